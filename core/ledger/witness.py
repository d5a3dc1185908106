"""The audit chain's witness: an append-only file outside the database.

Every event appended to the audit chain also appends `{"db", "seq", "hash"}` as one line
to the file named by `LEDGER_AUDIT_WITNESS` (integrity anchors included). Someone who can
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

WITNESS_ENV = "LEDGER_AUDIT_WITNESS"
WITNESS_LINES_MAX = 10_000_000  # a witness longer than this is rotated by the operator
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class WitnessLine:
    seq: int
    hash: str


class Witness:
    """Appends and reads the witness lines of one database."""

    def __init__(self, path: str | Path, database: str) -> None:
        self.path, self.database = Path(path), database

    @classmethod
    def from_environment(cls, database: str) -> Witness | None:
        path = os.environ.get(WITNESS_ENV, "").strip()
        return cls(path, database) if path else None

    def record(self, seq: int, event_hash: str) -> None:
        line = json.dumps({"db": self.database, "seq": seq, "hash": event_hash}, separators=(",", ":")) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, line.encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def lines(self) -> tuple[dict[int, str], list[str]]:
        """seq → hash for this database, and the problems found reading the file (a line
        that is not ours to judge, e.g. another database's, is skipped silently)."""
        recorded: dict[int, str] = {}
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
                    seq, event_hash = line["seq"], line["hash"]
                except (ValueError, KeyError, AttributeError, TypeError):
                    problems.append(f"witness line {number} is unreadable")
                    continue
                if recorded.get(seq, event_hash) != event_hash:
                    problems.append(f"witness records two hashes for event {seq}")
                recorded[seq] = event_hash
        return recorded, problems

    def last(self) -> WitnessLine | None:
        """The newest line of this database, read from the file's tail (cheap however long
        the file is; the whole file only when the tail holds none of ours)."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - TAIL_BYTES))
            tail = stream.read().decode("utf-8", errors="replace").splitlines()
        for text in reversed(tail):
            try:
                line = json.loads(text)
                if line.get("db") == self.database:
                    return WitnessLine(line["seq"], line["hash"])
            except (ValueError, KeyError, AttributeError, TypeError):
                continue
        recorded, _ = self.lines()
        if not recorded:
            return None
        seq = max(recorded)
        return WitnessLine(seq, recorded[seq])
