"""The README and the design notes tell the truth about the tree (issue 20, "Truthful docs").

Why: a layout that names files which no longer exist, or a printout the code does not
produce, sends every new reader the wrong way, and nothing else in the suite notices. So:
- every path the README's Layout block names exists;
- every module named in README.md, docs/*.md and the product's own docstrings and comments
  (`core.ledger.money`, `core/ledger/money.py`, `console.frame.principal`...) resolves to a
  file or package that exists, and a name after the module to something it defines;
- the README's example outputs are what the code prints (the ledger example, the flow-test
  scenario list, the shape of `flows run --json`, the number of pages).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOTES = sorted((ROOT / "docs").glob("*.md"))
PRODUCT_FOLDERS = ("core", "console", "pages", "benchmarks", "tools")
PRODUCT_FILES = ("app.py",)

# The Layout block: the first fenced block after this heading. Each entry line starts with one
# or more path tokens (a folder ends in "/"), then two or more spaces and what it is; an indented
# entry lies inside the nearest folder entry above it that is indented less. Any other line
# continues the description above it.
LAYOUT_HEADING = "## Layout\n"
PATH_TOKEN = re.compile(r"\A(?:[\w.-]+/|[\w-]*\.[\w.]+)\Z")  # "core/", "app.py", ".ci/", "requirements.txt"
ENTRY = re.compile(r"\A( *)(\S+(?: \S+)*?)(?: {2,}.*)?\Z")

# Module names in prose and docstrings: dotted from a top-level package, or slashed paths.
DOTTED_NAME = re.compile(r"(?<![\w./-])(?:core|console|benchmarks)(?:\.[A-Za-z_]\w*)+")
SLASHED_PATH = re.compile(r"(?<![\w./-])(?:core|console|pages|benchmarks|tools|scripts|demo|docs)/[\w./-]*")
FILE_SUFFIXES = frozenset({"md", "py", "png", "json", "txt", "toml", "yaml", "gz"})  # "console.md" is a file
# A dotted name the product spells as a whole string value ("console.login", an audit event
# type) is a value, not a module.
STRING_VALUE = re.compile(r"[\"']((?:core|console|benchmarks)(?:\.\w+)+)[\"']")

NUMBER_WORDS = {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}


def layout_block(readme: str) -> list[str]:
    """The lines of the fenced block that follows the Layout heading."""
    after = readme[readme.index(LAYOUT_HEADING) + len(LAYOUT_HEADING):]
    start = after.index("```\n") + len("```\n")
    return after[start:after.index("```", start)].splitlines()


def layout_paths(readme: str) -> list[str]:
    """Every path the Layout block names, made whole by its enclosing folder entries."""
    paths: list[str] = []
    folders: list[tuple[int, str]] = []  # (indent, whole path) of the open folder entries
    for line in layout_block(readme):
        match = ENTRY.match(line.rstrip())
        if not line.strip() or not match:
            continue
        indent, tokens = len(match.group(1)), match.group(2).split(" ")
        if not all(PATH_TOKEN.match(token) for token in tokens):
            continue  # a description's continuation
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else ""
        whole = [parent + token for token in tokens]
        paths.extend(whole)
        if len(tokens) == 1 and tokens[0].endswith("/"):
            folders.append((indent, whole[0]))
    return paths


def _is_module(parts: list[str]) -> bool:
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def product_sources() -> list[Path]:
    files = [ROOT / name for name in PRODUCT_FILES]
    for folder in PRODUCT_FOLDERS:
        files.extend(sorted((ROOT / folder).rglob("*.py")))
    return files


def string_values() -> set[str]:
    return {value for path in product_sources() for value in STRING_VALUE.findall(path.read_text())}


def unresolved_names(text: str, values: frozenset[str] = frozenset()) -> list[str]:
    """The module names and paths in `text` that name nothing in the tree, with why
    (`values`: dotted names that are values the product uses, not modules)."""
    problems = []
    for match in DOTTED_NAME.finditer(text):
        if match.group(0) in values or match.group(0).split(".", 1)[1] in FILE_SUFFIXES:
            continue  # a value, or a file name ("console.md")
        parts = match.group(0).split(".")
        known = len(parts)
        while known > 1 and not _is_module(parts[:known]):
            known -= 1
        if known < 2:
            problems.append(f"{match.group(0)}: no module {'.'.join(parts[:2])}")
            continue
        rest = parts[known:]
        if rest and not hasattr(importlib.import_module(".".join(parts[:known])), rest[0]):
            problems.append(f"{match.group(0)}: {'.'.join(parts[:known])} defines no {rest[0]}")
    for match in SLASHED_PATH.finditer(text):
        path = match.group(0).rstrip(".")
        if not (ROOT / path).exists():
            problems.append(f"{path}: no such file or folder")
    return problems


def test_layout_names_every_top_level_package():
    paths = layout_paths(README.read_text())
    for expected in ("app.py", "console/", "pages/", "core/", "core/base/", "core/ledger/", "core/platform/", "tests/"):
        assert expected in paths


def test_layout_paths_exist():
    missing = [path for path in layout_paths(README.read_text()) if not (ROOT / path).exists()]
    assert not missing, f"README.md's Layout names paths that do not exist: {missing}"


def test_layout_names_every_core_package():
    named = set(layout_paths(README.read_text()))
    packages = {f"core/{path.parent.name}/" for path in (ROOT / "core").glob("*/__init__.py")}
    assert not packages - named, f"README.md's Layout leaves out {sorted(packages - named)}"


def test_layout_parser_refuses_a_stale_layout():
    stale = LAYOUT_HEADING + "```\ncore/             the library\n  money.py          amounts\n  flows/            flows\n" \
        "    gone.py           nothing\nbenchmarks/       bench\n```\n"
    paths = layout_paths(stale)
    assert paths == ["core/", "core/money.py", "core/flows/", "core/flows/gone.py", "benchmarks/"]
    assert [path for path in paths if not (ROOT / path).exists()] == ["core/money.py", "core/flows/gone.py"]


def test_docs_module_names_resolve():
    values = frozenset(string_values())
    problems = [f"{path.relative_to(ROOT)}: {problem}"
                for path in (README, *NOTES) for problem in unresolved_names(path.read_text(), values)]
    assert not problems, "stale module names in the docs:\n" + "\n".join(problems)


def test_product_docstrings_module_names_resolve():
    values = frozenset(string_values())
    problems = [f"{path.relative_to(ROOT)}: {problem}"
                for path in product_sources() for problem in unresolved_names(path.read_text(), values)]
    assert not problems, "stale module names in docstrings and comments:\n" + "\n".join(problems)


def test_unresolved_names_finds_stale_names():
    text = "`core/store.py`, core.selfcheck.self_check, core.ledger.no_such_name, core.ledger.money, docs/console.md#x"
    assert unresolved_names(text) == [
        "core.selfcheck.self_check: no module core.selfcheck",
        "core.ledger.no_such_name: core.ledger defines no no_such_name",
        "core/store.py: no such file or folder",
    ]


def _python_block_after(readme: str, heading: str) -> str:
    after = readme[readme.index(heading):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```", start)]


def test_readme_ledger_example_prints_what_it_shows():
    """Each statement's output is the comment under it; an expression's value its comment
    on the same line (`balances  # {'BTC': ...}`)."""
    code = _python_block_after(README.read_text(), "## The ledger in a few lines")
    lines, namespace = code.splitlines(), {}
    statements = ast.parse(code).body
    shown, printed = [], []
    for number, statement in enumerate(statements):
        following = statements[number + 1].lineno - 1 if number + 1 < len(statements) else len(lines)
        shown.extend(line.removeprefix("# ") for line in lines[statement.end_lineno:following] if line.startswith("# "))
        inline = lines[statement.end_lineno - 1].partition("  # ")[2].strip()
        if isinstance(statement, ast.Expr) and inline:
            shown.append(inline)
            printed.append(repr(eval(compile(ast.Expression(statement.value), "README.md", "eval"), namespace)))
            continue
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(ast.Module([statement], []), "README.md", "exec"), namespace)
        printed.extend(output.getvalue().splitlines())
    assert shown and printed == shown


def test_readme_scenario_list_is_the_runners():
    from core.flowtests.runner import list_scenarios

    readme = README.read_text()
    paragraph = readme[readme.index("Scenarios of `flows run`:"):].split("\n\n")[0]
    named = re.findall(r"\b[a-z0-9]+(?:_[a-z0-9]+)*\b", re.sub(r"\([^)]*\)", "", paragraph.split(":", 1)[1]))
    assert named == list(list_scenarios())


def _shape(value: object, data_maps: frozenset[str], key: str = "") -> set[str]:
    """Every key path of a JSON value; a list's items and a data map's keys count as one ("*")."""
    if isinstance(value, dict):
        paths = set()
        for name, item in value.items():
            step = "*" if key in data_maps else name
            paths |= {f"{step}"} | {f"{step}.{inner}" for inner in _shape(item, data_maps, name)}
        return paths
    if isinstance(value, list):
        return {f"[].{inner}" for item in value for inner in _shape(item, data_maps, key)}
    return set()


def test_readme_flows_json_example_has_the_runs_shape():
    readme = README.read_text()
    after = readme[readme.index("### `flows run --json` format"):]
    start = after.index("```json\n") + len("```json\n")
    shown = json.loads(after[start:after.index("```", start)])
    environment = {name: value for name, value in os.environ.items() if name != "MONGODB_URI"}  # its own sandbox
    run = subprocess.run([sys.executable, "-m", "core", "flows", "run", "--scenario", "swap", "--json"],
                         cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=True)
    printed = json.loads(run.stdout)
    data_maps = frozenset({"balances_before", "balances_after", "fees_booked", "metadata"})
    assert _shape(shown, data_maps) == _shape(printed, data_maps)
    shown_step, printed_step = shown["scenarios"][0]["steps"][-1], printed["scenarios"][0]["steps"][-1]
    for key in ("name", "ok", "detail", "entries_written", "fees_booked", "self_check"):
        assert shown_step[key] == printed_step[key], key
    for side in ("balances_before", "balances_after"):
        assert all(printed_step[side][account] == value for account, value in shown_step[side].items()), side
    shown_entry, printed_entry = shown_step["entries"][0], printed_step["entries"][0]
    assert (shown_entry["type"], shown_entry["state"]) == (printed_entry["type"], printed_entry["state"])
    assert all(posting in printed_entry["postings"] for posting in shown_entry["postings"])
    assert shown_entry["metadata"].items() <= printed_entry["metadata"].items()


def test_readme_page_count_is_the_consoles():
    pages = len(list((ROOT / "pages").glob("*.py")))
    counts = re.findall(r"\| admin \| all (\w+)", README.read_text())
    assert counts and all(NUMBER_WORDS.get(word) == pages for word in counts), (counts, pages)
