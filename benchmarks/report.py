"""The benchmark's report: per-flow rows beside the legacy baseline, budgets, the text table."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from core.ledger.planner import uncovered, uncovered_reasons
from core.platform import COUNT_SHOWN_MAX

if TYPE_CHECKING:
    from benchmarks.run import Measurement, Run

# The budgets of issues 6 and 15.
TWO_LEG_ENTRY_OPS_MAX = 4  # posting protocol v2: 1 read, 1 insert, 2 projections
REPLAY_OPS_MAX = 3
PAGE_OPS_MAX = 12
# The per-user check reads a consistent cut of one user (issue 19): the user's balances, the
# user's entries, a re-read of the journal after the balances, the confirmation re-reads of
# any candidate finding, the user's open holds, and one read per flow collection for holds
# stranded behind finished flows — 19 round trips, the same at every size.
PAGE_OPS_MAX_BY_PAGE = {"integrity (check this user)": 20}
PLATFORM_CHECK_RATIO_MAX = 11
PAGE_DOCUMENTS_TOLERANCE = 0.10  # documents a page reads may differ this much from 1x to 10x (and 50x)
EXAMINED_TOLERANCE = 0.10  # keys and documents a page or the incremental check examines: the same band (issue 19)
EXAMINED_CHECKS = ("integrity.platform.incremental",)  # checks whose examined keys and documents must stay flat
GROWING_SHAPES_LISTED = 3
COUNTED_KEYS_MAX = COUNT_SHOWN_MAX + 1  # a page's count walks at most this many index keys (core.platform)
# The incremental check reads the new entries, per account touched its last verified link,
# projection and rollup head, plus a fixed part (state and pass documents, the rollup
# totals per kind and asset, reserved balances, audit events since the anchor).
INCREMENTAL_DOCUMENTS_PER_CHANGE = 4
INCREMENTAL_DOCUMENTS_FIXED = 120
NAME_WIDTH = 58


def _flow_rows() -> list[tuple[str, tuple[str, ...], tuple[str, ...], str]]:
    """(row, our steps summed, legacy steps summed, what the extra round trips buy), from
    flow_rows.toml beside this module (a table of prose, kept as data)."""
    rows = tomllib.loads(Path(__file__).with_name("flow_rows.toml").read_text(encoding="utf-8"))["row"]
    return [(row["flow"], tuple(row["ours"]), tuple(row["legacy"]), row["why"]) for row in rows]


FLOW_ROWS = _flow_rows()


Steps = dict[str, dict[str, "Measurement"]]  # step -> data set label -> measurement


def _sum(measurements: Steps, steps: tuple[str, ...], label: str) -> int | None:
    if not all(label in measurements.get(step, {}) for step in steps):
        return None
    return sum(measurements[step][label].ops for step in steps)


def _breakdown(measurements: Steps, steps: tuple[str, ...], label: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for step in steps:
        found = measurements.get(step, {}).get(label)
        for name, count in (found.breakdown if found else {}).items():
            total[name] = total.get(name, 0) + count
    return dict(sorted(total.items(), key=lambda item: (-item[1], item[0])))


def flow_rows(run: Run, labels: tuple[str, str]) -> list[dict]:
    """One row per FLOW_ROWS line: our operations at both sizes, the legacy baseline, the
    ratio, and — when ours costs more — what the extra round trips are and buy."""
    base, scaled = labels
    rows = []
    for name, ours, legacy, why in FLOW_ROWS:
        ops = {label: _sum(run.flows, ours, label) for label in labels}
        known = legacy and all(step in run.legacy for step in legacy)
        legacy_ops = sum(run.legacy[step].ops for step in legacy) if known else None
        ratio = round(ops[base] / legacy_ops, 2) if legacy_ops and ops[base] is not None else None
        breakdown = _breakdown(run.flows, ours, base)
        explanation = None
        if legacy_ops is not None and ops[base] is not None and ops[base] > legacy_ops:
            parts = ", ".join(f"{count}× {what}" for what, count in breakdown.items())
            explanation = f"+{ops[base] - legacy_ops} round trips: {why}. Ours: {parts}."
        rows.append({"flow": name, "steps": list(ours), "ops": ops, "legacy_ops": legacy_ops, "ratio": ratio,
                     "constant_across_sizes": ops[base] == ops[scaled], "breakdown": breakdown,
                     "explanation": explanation})
    return rows


def _series(measurements: Steps, name: str, labels: tuple[str, ...]) -> dict:
    found = measurements.get(name, {})
    ops = {label: found[label].ops for label in labels if label in found}
    documents = {label: found[label].documents for label in labels if label in found}
    seconds = {label: found[label].seconds for label in labels if label in found}
    base, scaled = labels[:2]
    ratio = round(ops[scaled] / ops[base], 2) if ops.get(base) and scaled in ops else None
    documents_ratio = round(documents[scaled] / documents[base], 2) if documents.get(base) and scaled in documents else None
    series = {"ops": ops, "documents": documents, "seconds": seconds, "ops_ratio": ratio,
              "documents_ratio": documents_ratio, "breakdown": found[base].breakdown if base in found else {}}
    if any(found[label].keys_examined is not None for label in labels if label in found):
        series.update(_examined({label: {"keys_examined": found[label].keys_examined,
                                         "documents_examined": found[label].documents_examined,
                                         "examined_by_shape": found[label].examined_by_shape}
                                 for label in labels if label in found}))
    return series


def _examined(by_label: dict[str, dict]) -> dict:
    """Keys and documents examined per data set, and the query shapes that grow most from
    the first data set to the last (where a figure that is not flat comes from)."""
    labels = list(by_label)
    first, last = by_label[labels[0]].get("examined_by_shape", {}), by_label[labels[-1]].get("examined_by_shape", {})
    growth = sorted(((last.get(shape, 0) - first.get(shape, 0), shape) for shape in set(first) | set(last)), reverse=True)
    capped = {label: sum(v for shape, v in found.get("examined_by_shape", {}).items()
                         if ".count_documents" in shape and v <= COUNTED_KEYS_MAX) for label, found in by_label.items()}
    return {"keys_examined": {label: found.get("keys_examined") for label, found in by_label.items()},
            "keys_counted_capped": capped,  # keys walked by counts bounded by COUNTED_KEYS_MAX: bounded, not growing
            "documents_examined": {label: found.get("documents_examined") for label, found in by_label.items()},
            "growing_shapes": [f"{shape}: {first.get(shape, 0)} → {last.get(shape, 0)}"
                               for grew, shape in growth if grew > 0 and not (".count_documents" in shape
                                                                              and last.get(shape, 0) <= COUNTED_KEYS_MAX)
                               ][:GROWING_SHAPES_LISTED]}


def examined_flat(series: dict) -> bool:
    """Keys and documents examined stay within EXAMINED_TOLERANCE of the first data set's (the
    keys of a count capped at COUNTED_KEYS_MAX are left out: bounded by the cap at any size)."""
    capped = series.get("keys_counted_capped", {})
    keys = [None if v is None else v - capped.get(label, 0) for label, v in series.get("keys_examined", {}).items()]
    documents = list(series.get("documents_examined", {}).values())
    return (len(keys) > 1 and None not in keys + documents
            and all(v <= base * (1 + EXAMINED_TOLERANCE) for values in (keys, documents) for base, v in
                    ((values[0], v) for v in values[1:])))


def flat(values: list[int]) -> bool:
    """Documents read do not grow with the data set: every later size within the tolerance of the first."""
    return bool(values) and all(v <= values[0] * (1 + PAGE_DOCUMENTS_TOLERANCE) for v in values[1:])


def incremental_budget(result: dict) -> dict:
    """The incremental check after NEW_ENTRIES entries reads O(new entries + accounts touched)."""
    series = result["checks"].get("integrity.platform.incremental", {"documents": {}})
    runs = {label: found.get("incremental", {}) for label, found in result["integrity_findings"].items()}
    limits = {label: INCREMENTAL_DOCUMENTS_PER_CHANGE * (run.get("entries_checked", 0) + run.get("accounts_checked", 0))
              + INCREMENTAL_DOCUMENTS_FIXED for label, run in runs.items() if run}
    met = bool(series["documents"]) and all(
        runs[label].get("mode") == "incremental" and series["documents"][label] <= limits[label] for label in series["documents"])
    return {"budget": f"incremental platform check: runs incrementally and reads ≤ {INCREMENTAL_DOCUMENTS_PER_CHANGE} × "
                      f"(entries checked + accounts touched) + {INCREMENTAL_DOCUMENTS_FIXED} documents at every size",
            "met": met, "measured": {"documents": series["documents"], "limit": limits,
                                     "checked": {label: (r.get("entries_checked"), r.get("accounts_checked")) for label, r in runs.items()}}}


def _constant(values: dict) -> bool:
    return len(set(values.values())) == 1


def budgets(result: dict, pages_measured: bool) -> list[dict]:
    """Each budget of issue 6 with its verdict: True (met), False (missed), None (not measured)."""
    checks = result["checks"]
    two_leg, platform_check = checks["two_leg_entry"], checks["integrity.platform"]
    found = [
        {"budget": f"two-leg entry ≤ {TWO_LEG_ENTRY_OPS_MAX} store operations (its tamper-evident record included)",
         "met": all(v <= TWO_LEG_ENTRY_OPS_MAX for v in two_leg["ops"].values()), "measured": two_leg["ops"]},
        {"budget": f"replay of a two-leg entry ≤ {REPLAY_OPS_MAX} store operations",
         "met": all(v <= REPLAY_OPS_MAX for v in checks["two_leg_replay"]["ops"].values()), "measured": checks["two_leg_replay"]["ops"]},
        {"budget": "user-balance read: same operations at both sizes",
         "met": _constant(checks["user_balances"]["ops"]), "measured": checks["user_balances"]["ops"]},
        {"budget": "per-user integrity check: same operations at both sizes",
         "met": _constant(checks["integrity.user"]["ops"]), "measured": checks["integrity.user"]["ops"]},
        {"budget": f"platform integrity check: operations ratio ≤ {PLATFORM_CHECK_RATIO_MAX} for 10× data",
         "met": platform_check["ops_ratio"] is not None and platform_check["ops_ratio"] <= PLATFORM_CHECK_RATIO_MAX,
         "measured": platform_check["ops"]},
        {"budget": "zero query shapes without a covering index",
         "met": not result["index_coverage"]["uncovered"], "measured": len(result["index_coverage"]["uncovered"])},
    ]
    found.append({"budget": "every flow step measured without an error", "met": not result["errors"],
                  "measured": result["errors"] or "no errors"})
    if not pages_measured:
        found.append({"budget": f"console pages ≤ {PAGE_OPS_MAX} operations", "met": None,
                      "measured": "not measured (pages skipped)"})
    if "integrity.platform.incremental" in checks:
        found.append(incremental_budget(result))
    for stem, page in result["pages"].items():
        values, documents = page["ops"], page["documents"]
        ops_max = PAGE_OPS_MAX_BY_PAGE.get(stem.split(" (entries unfolded)")[0], PAGE_OPS_MAX)
        met = (all(v <= ops_max for v in values.values()) and _constant(values) and flat(list(documents.values()))
               and not page["errors"])
        found.append({"budget": f"page {stem}: ≤ {ops_max} operations, same at every size; documents fetched flat "
                                f"(±{PAGE_DOCUMENTS_TOLERANCE:.0%})", "met": met,
                      "measured": {"ops": values, "documents": documents, "keys_counted": page.get("keys_counted")},
                      **({"errors": page["errors"]} if page["errors"] else {})})
    found += examined_budgets(result)
    return found


def examined_budgets(result: dict) -> list[dict]:
    """Issue 19: each page, and the incremental check (also between folds and recoveries),
    examines as many index keys and documents at 1×, 10× and 50× (±EXAMINED_TOLERANCE) by the
    planner model; where not, the query shapes that grow are named."""
    found = []
    named = [(f"page {stem}", page) for stem, page in result["pages"].items()]
    named += [(f"check {name}", series) for name, series in result["checks"].items()
              if name.split(" (")[0] in EXAMINED_CHECKS]
    for name, series in named:
        met = examined_flat(series)
        found.append({"budget": f"{name}: index keys and documents examined flat (±{EXAMINED_TOLERANCE:.0%}) at every size",
                      "met": met, "measured": {"keys": series.get("keys_examined"),
                                               "documents": series.get("documents_examined"),
                                               **({} if met else {"growing": series.get("growing_shapes")})}})
    return found


def _pages(run: Run, base: str) -> dict[str, dict]:
    result = {}
    for stem, by_label in run.pages.items():
        result[stem] = {**_examined(by_label), "ops": {label: r["ops"] for label, r in by_label.items()},
                        "documents": {label: r["documents"] for label, r in by_label.items()},
                        "keys_counted": {label: r.get("keys_counted", 0) for label, r in by_label.items()},
                        "documents_breakdown": {label: r.get("documents_breakdown", {}) for label, r in by_label.items()},
                        "seconds": {label: r["seconds"] for label, r in by_label.items()},
                        "breakdown": by_label[base]["breakdown"] if base in by_label else {},
                        "errors": sorted({e for r in by_label.values() for e in r["errors"]})}
    return result


def report(run: Run, size_name: str, labels: tuple[str, str], pages_measured: bool, throughput: dict,
           page_labels: tuple[str, ...] = ()) -> dict:
    """The whole report (JSON-ready)."""
    shapes = sorted(run.shapes, key=lambda r: (r.collection, r.operation, r.filter_fields, r.sort))
    missing = [{"collection": r.collection, "operation": r.operation, "filter_fields": list(r.filter_fields),
                "sort_fields": list(r.sort_fields), "branches": [list(map(list, b)) for b in r.branches],
                "reason": reason} for r, reason in zip(uncovered(shapes), uncovered_reasons(shapes))]
    check_names = list(run.checks)  # in the order they were measured
    result = {
        "size": size_name, "labels": list(labels), "page_labels": list(page_labels or labels), "data_sets": run.data_sets,
        "flows": flow_rows(run, labels),
        "checks": {name: _series(run.checks, name, tuple(page_labels or labels)) for name in check_names},
        "integrity_findings": run.integrity_ok,
        "errors": run.errors,
        "pages": _pages(run, labels[0]),
        "legacy": {name: {"ops": m.ops, "breakdown": m.breakdown} for name, m in run.legacy.items()},
        "index_coverage": {"query_shapes": len(shapes), "uncovered": missing},
        "throughput": throughput,
    }
    result["budgets"] = budgets(result, pages_measured)
    result["ok"] = all(b["met"] is not False for b in result["budgets"])
    return result


# -- text -------------------------------------------------------------------------------------------------------
def _row(name: str, *cells: object, width: int = 12) -> str:
    return f"{name:{NAME_WIDTH}}" + "".join(f"{_value(cell):>{width}}" for cell in cells)


def text(result: dict) -> str:
    """The human-readable table."""
    base, scaled = result["labels"]
    lines = [f"Ledger benchmark — size {result['size']} "
             "(operations are store round trips; times are embedded-store seconds)", ""]
    for label, info in result["data_sets"].items():
        lines.append(f"  data set {label}: {info['users']} users, {info['entries']} entries, {info['audit']} audit "
                     f"events, {info['balances']} balances — {info['how']} in {info['build_seconds']} s")
    lines += ["", _row("flow", base, scaled, "legacy", "ours/leg.")]
    for row in result["flows"]:
        ratio = None if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(_row(row["flow"], row["ops"].get(base), row["ops"].get(scaled), row["legacy_ops"], ratio))
    lines += ["", _row("check / read", f"ops {base}", f"ops {scaled}", f"docs {base}", f"docs {scaled}",
                       f"t {base}", f"t {scaled}", width=14)]
    for name, series in result["checks"].items():
        ops, documents, seconds = series["ops"], series.get("documents", {}), series["seconds"]
        lines.append(_row(name, ops.get(base), ops.get(scaled), documents.get(base), documents.get(scaled),
                          seconds.get(base), seconds.get(scaled), width=14))
    if result["pages"]:
        page_labels = result.get("page_labels") or [base, scaled]
        lines += ["", _row("console page (cold render)", *[f"ops {x}" for x in page_labels],
                           *[f"docs {x}" for x in page_labels], width=14)]
        for stem, page in result["pages"].items():
            lines.append(_row(stem, *[page["ops"].get(x) for x in page_labels],
                              *[page["documents"].get(x) for x in page_labels], width=14))
    lines += ["", *examined_text(result)]
    coverage = result["index_coverage"]
    lines += ["", f"index coverage: {coverage['query_shapes']} query shapes, "
                  f"{len(coverage['uncovered'])} without a covering index"]
    for shape in coverage["uncovered"]:
        lines.append(f"  UNCOVERED {shape['reason']}")
    throughput = result["throughput"]
    lines += ["", f"throughput — {throughput['label']}:",
              f"  1 thread: {throughput['one_thread']['entries_per_second']} entries/s; "
              f"4 threads: {throughput['four_threads']['entries_per_second']} entries/s; "
              f"process peak RSS {throughput.get('peak_rss_mib', '?')} MiB"]
    for run_name in ("one_thread", "four_threads"):
        lines += [f"  FAILED POST ({run_name}): {failure}" for failure in throughput[run_name].get("failures", [])]
    lines += ["", "budgets:"]
    for budget in result["budgets"]:
        mark = {True: "met", False: "NOT MET", None: "not measured"}[budget["met"]]
        lines.append(f"  [{mark:12}] {budget['budget']}: {budget['measured']}")
    lines += ["", "flows costing more than the legacy baseline:"]
    lines += [f"  {row['flow']}: {row['explanation']}" for row in result["flows"] if row["explanation"]]
    verdict = "all budgets met" if result["ok"] else "BUDGET MISSED"
    lines += ["", f"result: {verdict} ({result.get('seconds_total', '?')} s)"]
    return "\n".join(lines)


def _value(value: object) -> str:
    return "—" if value is None else str(value)


def examined_rows(result: dict) -> list[tuple[str, dict, bool | None]]:
    """(name, series, flat or None when not budgeted) for every check and page measured with
    the planner model."""
    rows = [(name, series, examined_flat(series) if name.split(" (")[0] in EXAMINED_CHECKS else None)
            for name, series in result["checks"].items() if series.get("keys_examined")]
    rows += [(f"page {stem}", page, examined_flat(page)) for stem, page in result["pages"].items()
             if page.get("keys_examined")]
    return rows


def examined_text(result: dict) -> list[str]:
    labels = result.get("page_labels") or result["labels"]
    lines = [_row("examined (planner model: index keys / documents)", *[f"keys {x}" for x in labels],
                  *[f"docs {x}" for x in labels], "flat", width=14)]
    for name, series, is_flat in examined_rows(result):
        lines.append(_row(name, *[series["keys_examined"].get(x) for x in labels],
                          *[series["documents_examined"].get(x) for x in labels],
                          {True: "yes", False: "NO", None: ""}[is_flat], width=14))
    return lines


# -- markdown (docs/performance.md) ----------------------------------------------------------------------------
def _cell(value: object) -> str:
    return "—" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


def markdown(result: dict) -> str:
    """The figures as Markdown tables, for docs/performance.md and the README."""
    base, scaled = result["labels"]
    lines = [f"| flow | ours ({base}) | ours ({scaled}) | legacy | ours / legacy |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {row['flow']} | {_cell(row['ops'][base])} | {_cell(row['ops'][scaled])} | {_cell(row['legacy_ops'])} "
              f"| {_cell(row['ratio'])} |" for row in result["flows"]]
    lines += ["", f"| operation | ops {base} | ops {scaled} | docs {base} | docs {scaled} | time {base} (s) | time {scaled} (s) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, series in result["checks"].items():
        ops, documents, seconds = series["ops"], series.get("documents", {}), series["seconds"]
        lines.append(f"| {name} | {_cell(ops.get(base))} | {_cell(ops.get(scaled))} | {_cell(documents.get(base))} "
                     f"| {_cell(documents.get(scaled))} | {_cell(seconds.get(base))} | {_cell(seconds.get(scaled))} |")
    if result["pages"]:
        page_labels = result.get("page_labels") or [base, scaled]
        lines += ["", "| page | " + " | ".join([f"ops {x}" for x in page_labels] + [f"docs {x}" for x in page_labels]
                                              + [f"time {x} (s)" for x in page_labels]) + " |",
                  "|---|" + "---:|" * (3 * len(page_labels))]
        for stem, page in result["pages"].items():
            cells = ([page["ops"].get(x) for x in page_labels] + [page["documents"].get(x) for x in page_labels]
                     + [page["seconds"].get(x) for x in page_labels])
            lines.append(f"| {stem} | " + " | ".join(_cell(c) for c in cells) + " |")
    labels = result.get("page_labels") or [base, scaled]
    lines += ["", "| page or check | " + " | ".join([f"keys {x}" for x in labels] + [f"docs {x}" for x in labels])
              + " | flat (±10%) |", "|---|" + "---:|" * (2 * len(labels)) + "---|"]
    for name, series, is_flat in examined_rows(result):
        cells = [series["keys_examined"].get(x) for x in labels] + [series["documents_examined"].get(x) for x in labels]
        lines.append(f"| {name} | " + " | ".join(_cell(c) for c in cells) + " | "
                     + {True: "yes", False: "**no**", None: "—"}[is_flat] + " |")
    lines += ["", "| budget | met | measured |", "|---|---|---|"]
    verdicts = {True: "met", False: "**not met**", None: "not measured"}
    lines += [f"| {b['budget']} | {verdicts[b['met']]} | {b['measured']} |" for b in result["budgets"]]
    return "\n".join(lines)
