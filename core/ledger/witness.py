"""The audit chain's witness: an append-only file outside the database.

Every event appended to the audit chain also appends `{"db", "stream", "seq", "hash"}` as
one line to the file named by `LEDGER_AUDIT_WITNESS` (integrity anchors included). Someone who can
rewrite the database can delete the newest events and leave a chain that verifies — but
not the lines already written here, so `audit verify` compares the chain with the
witness and reports the first witnessed event that is missing or different. Keep the
file where the database's writers cannot reach it (another host, a WORM bucket's sync).

Lines are short and written with O_APPEND, so concurrent processes never interleave
within a line; a process that crashes between its insert and its line leaves the
witness one event behind, never ahead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from core.base.settings import WITNESS_ENV  # noqa: F401 (re-exported: read by core.base.settings.witness_settings)

WITNESS_LINES_MAX = 10_000_000  # a witness longer than this is rotated by the operator
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class WitnessLine:
    seq: int
    hash: str
    stream: int = 0


class Witness:
    """Appends and reads the witness lines of one database."""

    def __init__(self, path: str | Path, database: str) -> None:
        self.path, self.database = Path(path), database

    def record(self, stream: int, seq: int, event_hash: str) -> None:
        line = json.dumps({"db": self.database, "stream": stream, "seq": seq, "hash": event_hash}, separators=(",", ":")) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line.encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def lines(self) -> tuple[dict[tuple[int, int], str], list[str]]:
        """(stream, seq) → hash for this database, and the problems found reading the file (a
        line that is not ours to judge, e.g. another database's, is skipped silently)."""
        recorded: dict[tuple[int, int], str] = {}
        problems: list[str] = []
        if not self.path.exists():
            return recorded, problems
        with self.path.open(encoding="utf-8") as stream:
            for number, text in enumerate(stream, start=1):
                if number > WITNESS_LINES_MAX:
                    problems.append(f"witness longer than {WITNESS_LINES_MAX} lines: rotate it")
                    break
                try:
                    line = json.loads(text)
                    if line.get("db") != self.database:
                        continue
                    key, event_hash = (line.get("stream", 0), line["seq"]), line["hash"]
                except (ValueError, KeyError, AttributeError, TypeError):
                    problems.append(f"witness line {number} is unreadable")
                    continue
                if recorded.get(key, event_hash) != event_hash:
                    problems.append(f"witness records two hashes for stream {key[0]} seq {key[1]}")
                recorded[key] = event_hash
        return recorded, problems

    def _tail(self) -> list[WitnessLine]:
        """This database's lines in the file's last TAIL_BYTES, oldest first."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - TAIL_BYTES))
            tail = stream.read().decode("utf-8", errors="replace").splitlines()
        lines = []
        for text in tail:
            try:
                line = json.loads(text)
                if line.get("db") == self.database:
                    lines.append(WitnessLine(line["seq"], line["hash"], line.get("stream", 0)))
            except (ValueError, KeyError, AttributeError, TypeError):
                continue
        return lines

    def newest_per_stream(self) -> dict[int, WitnessLine]:
        """The newest line of each of this database's streams seen in the file's tail (cheap
        however long the file is; the whole file only when the tail holds none of ours)."""
        newest = {line.stream: line for line in self._tail()}
        if not newest:
            recorded, _ = self.lines()
            newest = {stream: WitnessLine(seq, event_hash, stream) for (stream, seq), event_hash in sorted(recorded.items())}
        return newest

    def last(self) -> WitnessLine | None:
        """The newest line of this database (for display), or None."""
        tail = self._tail()
        if tail:
            return tail[-1]
        newest = self.newest_per_stream()
        return next(iter(newest.values()), None) if newest else None
