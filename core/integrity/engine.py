"""The integrity engine (SPEC §8): per-user and platform-wide checks, stored run records,
history, and approval-gated projection repairs.

It builds on `core.ledger.selfcheck` (journal ↔ projections, zero-sum, stuck entries) and adds
the checks that need more than the journal: each entry against the hash its outcome
event recorded in the audit chain (an edit that also recomputes `entry_hash` is caught),
locked balances against open holds, quote reservations, escrow of closed trades, fee
revenue against fees booked minus payouts and sweeps, and the audit chain itself.

Checks compare like with like so one corruption yields one finding: projections against
the journal (projection_mismatch), and the journal's applied balances against the
business documents (holds, quotes, trades, fees). A per-asset zero-sum failure that the
projection mismatches of that asset fully explain is not reported twice.

Nothing is repaired silently: `request_projection_repair` (core.integrity.repairs, re-exported here)
opens an approval request (kind "repair.projection"); its executor rebuilds the projection
and audits before/after.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Callable
from datetime import datetime, timedelta

from core.platform.boundary import boundary
from core.ledger import AccountKind
from core.base.errors import ConfigurationError, IntegrityRunNotFoundError, InvalidFilterError, LedgerError, UnknownUserError
from core.integrity.chains import Link, entry_findings, projection_findings, verify_links
from core.integrity.checks import (  # noqa: F401 (IntegrityFinding, lift and the constants are part of this API)
    CLOSED_TRADE_STATES,
    RESERVATION_GRACE,
    SEVERITY_RANK,
    IntegrityFinding,
    JournalView,
    absorb,
    hold_findings,
    lift,
)
from core.integrity.full import full_findings
from core.integrity.stranded import fold_duplicates, stranded_hold_findings
from core.integrity.incremental import FOLD_STEPS_PER_RUN_MAX, STATE, check_incremental, current_anchor, save_anchor
from core import rollups
from core.ledger import Page
from core.ledger import take_anchor, verify_anchor
from core.base.permissions import Permission, Principal, require
from core.base.records import record_dict
from core.platform import Platform
from core.integrity.repairs import REPAIR_KIND, execute_projection_repair, journal_balance, journal_head, request_projection_repair  # noqa: F401
from core.ledger import STUCK_AFTER, JournalRead, close_journal, scan
from core.ledger import AssetRegistry, Store

RUNS = "integrity_runs"
FINDINGS_STORED_MAX = 1_000  # a run record keeps at most this many findings (the count is exact)
HISTORY_PAGE_SIZE_MAX = 200
TREND_POINTS_MAX = 500
CRITICAL_STATE_ID = "platform_critical"  # in integrity_state: the last platform run found critical problems
LEDGER_ANCHOR_EVENT = "ledger.anchor"  # the audit event type core.ledger.take_anchor appends
RUNS_KEPT_MAX = 5_000  # stored run records kept (weeks of 5-minute runs); the audit trail keeps every run's summary
RUN_KEYS = ("run_id", "ok", "severity", "scope", "mode", "notes", "heads_digest", "started_at", "duration_ms", "counts",
            "findings")  # a run's stable JSON shape (docs/integrity.md), in this order
ONE_PER_SUBJECT = ("stuck_entry",)  # one stuck entry is one finding, however many accounts it left behind

# The legacy bridge plugs its per-user comparison in (core.legacy registers it on import),
# so the integrity engine never imports the bridge: `check_user(..., legacy=store)` runs
# every registered check on that store. One check: (legacy store, user id, the user's
# projected balances by account id, the asset registry) → findings.
LegacyUserCheck = Callable[[Store, str, dict[str, int], AssetRegistry], list[IntegrityFinding]]
LEGACY_USER_CHECKS: list[LegacyUserCheck] = []


def register_legacy_user_check(check: LegacyUserCheck) -> None:
    """Plug a per-user legacy comparison into `check_user` (idempotent)."""
    if check not in LEGACY_USER_CHECKS:
        LEGACY_USER_CHECKS.append(check)


@dataclass
class IntegrityReport:
    """One run: `ok` when nothing critical or warning was found (info is noise)."""

    scope: str
    started_at: datetime
    findings: list[IntegrityFinding] = field(default_factory=list)
    duration_ms: int = 0
    entries_checked: int = 0
    accounts_checked: int = 0
    run_id: str | None = None
    mode: str = "full"  # "full" (everything) or "incremental" (what changed since the last verified anchor)
    notes: list[str] = field(default_factory=list)
    heads_digest: str | None = None  # the digest of every account head this run anchored

    @property
    def severity(self) -> str:
        worst = max((SEVERITY_RANK[f.severity] for f in self.findings), default=-1)
        return next((name for name, rank in SEVERITY_RANK.items() if rank == worst), "ok")

    @property
    def ok(self) -> bool:
        return all(f.severity == "info" for f in self.findings)

    @property
    def counts(self) -> dict:
        by_kind: dict[str, int] = defaultdict(int)
        for finding in self.findings:
            by_kind[finding.kind] += 1
        return {
            **{name: sum(f.severity == name for f in self.findings) for name in SEVERITY_RANK},
            "findings": len(self.findings),
            "entries_checked": self.entries_checked,
            "accounts_checked": self.accounts_checked,
            "by_kind": dict(sorted(by_kind.items())),
        }

    def as_dict(self) -> dict:
        """The stable JSON shape (docs/integrity.md)."""
        return record_dict(self, RUN_KEYS, findings=[f.as_dict() for f in self.findings])


# -- running the checks ---------------------------------------------------------------------------
@boundary
def check_platform(
    platform: Platform, principal: Principal, *, full: bool = False, stuck_after: timedelta = STUCK_AFTER,
    record: bool = True,
) -> IntegrityReport:
    """The platform-wide checks (SPEC §8), stored as a run record when `record`.

    By default only what changed since the last verified anchor is verified
    (`core.integrity.incremental`: O(new entries + accounts touched)); with `full`, or when
    there is no usable anchor, everything is (`core.integrity.full`: O(journal)), and the
    anchor restarts there. Runs anchor every account head into the audit trail (`_anchor`).
    Raises: PermissionDeniedError.
    """
    require(principal, Permission.RUN_INTEGRITY)
    started, now = time.monotonic(), platform.clock.now()
    still_wrong = not full and _last_platform_run_was_critical(platform.store)
    incremental = None if full or still_wrong else check_incremental(platform, now, stuck_after)
    if incremental is not None and incremental.needs_full is None:
        report = IntegrityReport("platform", now, _deduplicated(incremental.findings), mode="incremental",
                                 entries_checked=incremental.entries_checked, accounts_checked=incremental.accounts_checked)
        if incremental.anchor is not None:
            save_anchor(platform.store, incremental.anchor)
    else:
        try:
            rollups.update(platform.store, passes_max=FOLD_STEPS_PER_RUN_MAX)  # bounded, like the incremental run's
        except LedgerError:
            pass  # a hole in a chain: the full check names the entry
        anchor = current_anchor(platform.store, platform.ledger.audit)  # everything up to here is in the journal the full check reads
        findings, entries_checked, accounts_checked = full_findings(platform, now, stuck_after)
        findings += _anchor_findings(platform)
        report = IntegrityReport("platform", now, _deduplicated(findings), entries_checked=entries_checked,
                                 accounts_checked=accounts_checked)
        if incremental is not None:
            report.notes.append(f"full check instead of incremental: {incremental.needs_full}")
        elif still_wrong:
            report.notes.append("full check instead of incremental: the last platform run found critical problems "
                                "(an incremental run only looks at what changed, and a repair may not have)")
        if not any(f.severity == "critical" for f in report.findings):
            save_anchor(platform.store, anchor)  # while anything is wrong, every run stays a full one
    report.findings += _owed_commission_findings(platform, now, stuck_after)
    if report.mode == "incremental":  # the full check joins every open hold with its flow (core.integrity.full)
        report.findings += stranded_hold_findings(platform, now, stuck_after)
    report.findings = _deduplicated(fold_duplicates(report.findings))
    critical = any(f.severity == "critical" for f in report.findings)
    if critical or report.mode == "full":  # only a clean full run clears it: an incremental one may not look where it was
        platform.store.collection(STATE).update_one({"_id": CRITICAL_STATE_ID}, {"$set": {"critical": critical, "at": now}},
                                                    upsert=True)
    _anchor(platform, principal, report, incremental.accounts if report.mode == "incremental" and incremental is not None else None)
    return _finish(platform, principal, report, started, record)


def _last_platform_run_was_critical(store: Store) -> bool:
    """While the last platform run found critical problems every run is a full one, so a
    finding never drops out of the latest run until it is fixed. A state document, not the
    run history: two runs in the same millisecond must not make the answer depend on ids."""
    state = store.collection(STATE).find_one({"_id": CRITICAL_STATE_ID}, projection={"critical": 1})
    return bool(state and state.get("critical"))


def _owed_commission_findings(platform: Platform, now: datetime, stuck_after: timedelta) -> list[IntegrityFinding]:
    """Referral commissions owed and unpaid (issue 10): a finished flow whose commission the
    fee wallet could not pay yet is never silent; recovery pays it when the wallet allows.
    A flow that has not tried yet (nothing recorded as owed) is in flight between finishing
    and settling its referrals — reported once it finished longer than `stuck_after` ago,
    judged on a targeted re-read of the flow (issue 19)."""
    from core.flows.referral import owed_commissions

    items = owed_commissions(platform)
    untried: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if not item["owed_entry_ids"]:
            untried[item["collection"]].append(item["flow_id"])
    young: set[str] = set()
    for collection, ids in untried.items():
        for document in platform.store.collection(collection).find({"_id": {"$in": ids}}, limit=len(ids), projection=_FINISHED_AT):
            finished = [document.get(name) for name in _FINISHED_AT if isinstance(document.get(name), datetime)]
            if document.get("referral_done") is not False or (finished and max(finished) > now - stuck_after):
                young.add(document["_id"])
    return [
        IntegrityFinding(kind="commission_owed", severity="warning", subject=item["flow_id"], collection=item["collection"],
                         message=f"{item['collection']} {item['flow_id']} ({item['state']}): referral commission owed and "
                                 f"unpaid on {', '.join(item['owed_entry_ids']) or 'its fee entries (not yet settled)'}")
        for item in items if item["flow_id"] not in young
    ]


_FINISHED_AT = {"settled_at": 1, "executed_at": 1, "closed_at": 1, "created_at": 1, "referral_done": 1}


def _anchor_findings(platform: Platform) -> list[IntegrityFinding]:
    """The newest ledger anchor still holds: each anchored head is still the unedited entry
    owning that account version (a consistent rewrite of an account's newest entries and
    its projection is caught here). O(accounts): part of the full check."""
    check = verify_anchor(platform.store, platform.ledger.audit)
    return [IntegrityFinding("anchor_mismatch", "critical", check.anchor_id or "anchor", problem, collection="ledger_anchors")
            for problem in check.problems]


def _anchor(platform: Platform, principal: Principal, report: IntegrityReport, accounts: list[str] | None) -> None:
    """Anchor account heads into the audit trail on every run (`core.ledger.take_anchor`):
    a full run fixes every head (O(accounts)); an incremental run fixes the heads of the
    accounts it verified, chained to the previous anchor (O(accounts touched)). A run that
    found anything critical anchors nothing: the last good anchor stays the reference."""
    if any(f.severity == "critical" for f in report.findings):
        report.notes.append("no new ledger anchor: this run found critical problems")
        return
    event = take_anchor(platform.store, platform.ledger.audit, actor=principal.name, role=principal.role.value,
                        anchor_id=f"anchor_{report.started_at:%Y%m%d%H%M%S}_{uuid.uuid4().hex[:10]}", accounts=accounts)
    report.heads_digest = event["data"]["root"]


@boundary
def check_user(
    platform: Platform, principal: Principal, user_id: str, *, legacy: Store | None = None,
    stuck_after: timedelta = STUCK_AFTER, record: bool = True,
) -> IntegrityReport:
    """The per-user checks in a constant number of queries whatever the number of users:
    the user's balance documents (by `owner`), the user's entries (by `user_ids`) — each
    user account's hash chain verified from genesis and its projection, re-read after the
    journal, against the chain's head — and, with `legacy`, one query per legacy collection.
    The journal read is closed like the platform check's (issue 19): a version of the user's
    accounts below one it saw, or the place of a hold whose close it saw, is fetched by a
    targeted read (none on a quiet ledger), so the holds and chains it judges are one cut.

    Raises: PermissionDeniedError, InvalidAccountError (bad user id), UnknownUserError (no
        such user in the directory nor the ledger: refused, no run stored).
    """
    require(principal, Permission.RUN_INTEGRITY)  # `user_id` was checked by the @boundary
    started, now = time.monotonic(), platform.clock.now()
    user_kinds = (AccountKind.USER_AVAILABLE.value, AccountKind.USER_LOCKED.value)
    user_prefixes = tuple(f"{kind}:{user_id}:" for kind in user_kinds)
    balances = {
        d["_id"]: d
        for d in platform.store.collection("balances").find({"owner": user_id})
        if d.get("kind") in user_kinds
    }
    view, closed, findings = JournalView(), set(), []
    links: dict[str, list] = defaultdict(list)
    entries: dict[str, dict] = {}

    def take(entry: dict) -> None:
        absorb(view, entry, closed)
        entries[entry["_id"]] = entry
        findings.extend(entry_findings(entry))
        for posting in entry.get("postings", []):
            if posting.get("owner") == user_id and posting.get("kind") in user_kinds:
                links[posting["account"]].append((posting, entry))

    read = JournalRead(in_scope=lambda account: account.startswith(user_prefixes))
    for entry in scan(platform.store.collection("entries"), {"user_ids": user_id}):
        if read.add(entry):
            take(entry)
    close_journal(platform.store, read, take)  # an entry inserted behind the scan's cursor is never a hole (issue 19)
    if not balances and not view.entries and not _in_directory(platform, user_id):
        raise UnknownUserError(f"there is no user {user_id}: not in the directory and nothing in the ledger", user_id=user_id)
    heads = {}
    for account in sorted(set(links) | set(balances)):
        ordered = sorted(links[account], key=lambda link: link[0].get("version") if isinstance(link[0].get("version"), int) else -1)
        heads[account], broken = verify_links(account, Link(), ordered)
        findings += [broken] if broken else []
    findings += projection_findings(platform.store, heads, entries, now, stuck_after)
    locked = {
        a for a in set(balances) | set(view.applied) if a.startswith(f"{AccountKind.USER_LOCKED.value}:{user_id}:")
    }
    findings += hold_findings(view, locked)
    findings += stranded_hold_findings(platform, now, stuck_after, view.open_holds, named=False)
    if legacy is not None:
        if not LEGACY_USER_CHECKS:
            raise ConfigurationError("a legacy database was given but no legacy check is registered (import core.legacy)")
        projected = {a: d.get("balance_minor", 0) for a, d in balances.items()}
        for legacy_check in LEGACY_USER_CHECKS:
            findings += legacy_check(legacy, user_id, projected, platform.registry)
    report = IntegrityReport(
        f"user:{user_id}",
        now,
        _deduplicated(findings),
        entries_checked=len(view.entries),
        accounts_checked=len(heads),
    )
    return _finish(platform, principal, report, started, record)


def _in_directory(platform: Platform, user_id: str) -> bool:
    """Whether the exchange's directory (`users`) knows `user_id` (one indexed read)."""
    return platform.store.collection("users").find_one({"user_id": user_id}, projection={"_id": 1}) is not None


def _deduplicated(findings: list[IntegrityFinding]) -> list[IntegrityFinding]:
    """The same (kind, subject, message) once, critical first."""
    seen, result = set(), []
    for finding in findings:
        message = None if finding.kind in ONE_PER_SUBJECT else finding.message
        key = (finding.kind, finding.subject, message, finding.collection, finding.field)
        if key not in seen:
            seen.add(key)
            result.append(finding)
    return sorted(result, key=lambda f: (-SEVERITY_RANK[f.severity], f.kind, f.subject))


def _finish(
    platform: Platform, principal: Principal, report: IntegrityReport, started: float, record: bool
) -> IntegrityReport:
    report.duration_ms = int((time.monotonic() - started) * 1000)
    if record:
        report.run_id = f"run_{report.started_at:%Y%m%d%H%M%S}_{uuid.uuid4().hex[:10]}"
        stored = report.as_dict()
        stored["findings"] = stored["findings"][:FINDINGS_STORED_MAX]
        platform.store.collection(RUNS).insert_one(
            {
                "_id": report.run_id,
                **{k: v for k, v in stored.items() if k != "run_id"},
                "findings_truncated": len(report.findings) > FINDINGS_STORED_MAX,
                "actor": principal.name,
                "role": principal.role.value,
            }
        )
        platform.ledger.audit.append(
            type="integrity.check",
            actor=principal.name,
            role=principal.role.value,
            target=report.run_id,
            user=report.scope.removeprefix("user:") if report.scope.startswith("user:") else None,
            data={
                "scope": report.scope,
                "ok": report.ok,
                "severity": report.severity,
                **{k: v for k, v in report.counts.items() if k != "by_kind"},
            },
        )
        prune_history(platform.store)
    return report


def prune_history(store: Store, kept_max: int | None = None) -> int:
    """Keep the newest `RUNS_KEPT_MAX` run records (the history the console pages through);
    older ones are deleted — each run's summary stays in the audit trail (`integrity.check`).
    Returns how many were deleted. One index walk to the boundary, one delete."""
    kept_max = RUNS_KEPT_MAX if kept_max is None else kept_max
    runs = store.collection(RUNS)
    boundary = runs.find({}, sort=[("started_at", -1), ("_id", -1)], skip=kept_max, limit=1,
                         projection={"started_at": 1})
    if not boundary:
        return 0
    at, run_id = boundary[0]["started_at"], boundary[0]["_id"]
    return runs.delete_many({"$or": [{"started_at": {"$lt": at}}, {"started_at": at, "_id": {"$lte": run_id}}]})


# -- history for the console ------------------------------------------------------------------------
def _scope_query(scope: object) -> dict:
    if scope is None:
        return {}
    if not isinstance(scope, str) or not scope or len(scope) > 200:
        raise InvalidFilterError("scope must be 'platform' or 'user:<id>'")
    return {"scope": scope}


@boundary
def history(
    platform: Platform, principal: Principal, page: int = 0, page_size: int = 20, *, scope: str | None = None
) -> Page:
    """Stored runs, newest first, one server-side page (findings included).
    Raises: PermissionDeniedError, InvalidFilterError."""
    require(principal, Permission.RUN_INTEGRITY)
    if (
        isinstance(page, bool)
        or isinstance(page_size, bool)
        or not isinstance(page, int)
        or not isinstance(page_size, int)
        or page < 0
        or not (1 <= page_size <= HISTORY_PAGE_SIZE_MAX)
    ):
        raise InvalidFilterError(f"page must be ≥ 0 and page_size 1..{HISTORY_PAGE_SIZE_MAX}")
    documents = platform.store.collection(RUNS).find(
        _scope_query(scope), sort=[("started_at", -1), ("_id", -1)], skip=page * page_size, limit=page_size + 1
    )
    return Page(documents[:page_size], page, page_size, len(documents) > page_size)


@boundary
def get_run(platform: Platform, principal: Principal, run_id: str) -> dict:
    """Raises: PermissionDeniedError, IntegrityRunNotFoundError."""
    require(principal, Permission.RUN_INTEGRITY)
    document = platform.store.collection(RUNS).find_one({"_id": run_id}) if isinstance(run_id, str) else None
    if document is None:
        raise IntegrityRunNotFoundError(f"no integrity run {run_id!r}", run_id=repr(run_id))
    return document


@boundary
def trend(platform: Platform, principal: Principal, *, points: int = 100, scope: str | None = None) -> list[dict]:
    """The last `points` runs, oldest first, as counts for a chart (no findings loaded).
    Raises: PermissionDeniedError, InvalidFilterError."""
    require(principal, Permission.RUN_INTEGRITY)
    if isinstance(points, bool) or not isinstance(points, int) or not (1 <= points <= TREND_POINTS_MAX):
        raise InvalidFilterError(f"points must be 1..{TREND_POINTS_MAX}")
    documents = platform.store.collection(RUNS).find(
        _scope_query(scope),
        sort=[("started_at", -1), ("_id", -1)],
        limit=points,
        projection={"scope": 1, "started_at": 1, "ok": 1, "severity": 1, "counts": 1, "duration_ms": 1},
    )
    return [
        {
            "run_id": d["_id"],
            "started_at": d["started_at"],
            "scope": d["scope"],
            "ok": d["ok"],
            "severity": d["severity"],
            "critical": d["counts"]["critical"],
            "warning": d["counts"]["warning"],
            "info": d["counts"]["info"],
            "findings": d["counts"]["findings"],
            "duration_ms": d["duration_ms"],
        }
        for d in reversed(documents)
    ]
