"""Confirming a candidate finding by a targeted re-read before it is reported (issue 19).

A check compares the journal with business documents (quotes, trades, holds) read at
another moment; while flows run, a quote opened or a trade released between the two reads
looks like a mismatch. Each candidate of such a kind is therefore re-examined here with
reads ordered so that only a real disagreement survives — never by waiting, and never on a
clock's word about whether a reading is consistent (the stuck threshold only decides how
long a flow may legitimately stand between two of its steps):

- `reservation_mismatch`: the reserved float of the asset is read as a consistent cut
  (`core.ledger.read_projections`), bracketed by two reads of the asset's live quotes, and
  every reservation hold open in that cut is accounted for: by a quote that is open, by a
  quote between two steps for less than the stuck threshold (in flight), or by a quote that
  finished after the cut (its closing entry exists, outside the cut). The cut's total must
  equal the holds open in it. Anything else confirms the finding.
- `closed_trade_escrow`: the trade's hold is re-read; an escrow that a closing entry
  emptied after the check's read (projected, or still in flight) is not a finding.
- `locked_hold_mismatch` (incremental check, which compares a folded version with holds
  read later): the `user.locked` projection is re-read, then the holds open now, then the
  entries claiming its later versions; the holds open at the projection's version must add
  up to its balance.
Kinds the cut itself makes exact (zero sum, fees, holds in the full and per-user checks)
pass through unchanged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.integrity.checks import IntegrityFinding
from core.ledger import (
    AccountKind,
    accounts as acct,
    claim_of,
    entries_by_claims,
    family_query,
    logical_id,
    parse_account_id,
    read_projections,
)
from core.platform import Platform

QUOTES_READ_MAX = 10_000  # live quotes of one asset a confirmation reads (open quotes live minutes)
STRIPES_READ_MAX = 128  # core.ledger.accounts.STRIPES_MAX
HOLD_ENTRIES_READ_MAX = 4  # a hold has one place and at most one close
LIVE_QUOTE_STATES = ("new", "open", "executing", "expiring")
TRANSIENT_QUOTE_STATES = ("new", "executing", "expiring")
LATER_VERSIONS_READ_MAX = 64  # rounds reading the versions claimed after a re-read projection


def confirmed(platform: Platform, findings: list[IntegrityFinding], now: datetime, stuck_after: timedelta,
              *, holds: bool = False) -> list[IntegrityFinding]:
    """`findings` without the candidates a targeted re-read explains. `holds`: confirm
    `locked_hold_mismatch` too (the incremental check's are not read from one cut)."""
    kept = []
    for finding in findings:
        if finding.kind == "reservation_mismatch" and not reservation_stands(platform, finding.asset, now, stuck_after):
            continue
        if finding.kind == "closed_trade_escrow" and not escrow_stands(platform, finding.subject, finding.account):
            continue
        if holds and finding.kind == "locked_hold_mismatch" and not locked_stands(platform, finding.account):
            continue
        kept.append(finding)
    return kept


# -- reservations --------------------------------------------------------------------------------------
def _live_quotes(platform: Platform, asset: str) -> dict[str, dict]:
    documents = platform.store.collection("quotes").find(
        {"state": {"$in": list(LIVE_QUOTE_STATES)}, "reserved_asset": asset}, limit=QUOTES_READ_MAX,
        projection={"state": 1, "reserved_minor": 1, "created_at": 1, "decision": 1})
    return {str(d["_id"]): d for d in documents}


def reservation_stands(platform: Platform, asset: str | None, now: datetime, stuck_after: timedelta) -> bool:
    """Whether the reserved float of `asset` really disagrees with its quotes (module
    docstring). Reads: the float's stripes, live quotes, a consistent cut of the stripes,
    live quotes again, the entries that moved the stripes since the first read, the hold
    entries of every quote involved and the quotes not read yet."""
    if asset is None:
        return True
    store, reserved = platform.store, acct.liquidity_reserved(asset)
    balances = store.collection("balances")

    def collect(projection: dict | None) -> dict[str, dict]:
        return {d["_id"]: d for d in balances.find(family_query(reserved), projection=projection, limit=STRIPES_READ_MAX)}

    before = {account: document.get("version", 0) for account, document in collect({"version": 1}).items()}
    quotes = _live_quotes(platform, asset)
    cut = read_projections(store, collect, lambda posting: logical_id(str(posting.get("account"))) == reserved.id)
    quotes.update(_live_quotes(platform, asset))  # the later read wins: fresher states
    positions = {account: document.get("version", 0) for account, document in cut.positions.items()}
    claims = [claim_of(a, v) for a, top in positions.items() for v in range(before.get(a, 0) + 1, top + 1)]
    known = {claim_of(p["account"], p["version"]) for e in cut.entries.values() for p in e.get("postings") or []}
    moved = [*cut.entries.values(), *entries_by_claims(store, [c for c in claims if c not in known])]
    moved_holds = {e["hold_id"] for e in moved if isinstance(e.get("hold_id"), str) and _reserved_legs(e, reserved.id)}
    holds = _hold_entries(platform, sorted(set(quotes) | moved_holds))
    missing = sorted(set(holds) - set(quotes))
    if missing:
        quotes.update({str(d["_id"]): d for d in store.collection("quotes").find(
            {"_id": {"$in": missing}}, limit=len(missing), projection={"state": 1, "reserved_minor": 1, "created_at": 1, "decision": 1})})
    total = sum(document.get("balance_minor", 0) for document in cut.positions.values())
    return _reservations_disagree(reserved.id, positions, total, holds, quotes, now, stuck_after)


def _hold_entries(platform: Platform, hold_ids: list[str]) -> dict[str, dict[str, dict]]:
    """hold id → {"place": entry, "close": entry} as the journal has them now."""
    result: dict[str, dict[str, dict]] = {}
    for start in range(0, len(hold_ids), 500):
        chunk = hold_ids[start:start + 500]
        for entry in platform.store.collection("entries").find({"hold_id": {"$in": chunk}}, limit=HOLD_ENTRIES_READ_MAX * len(chunk),
                                                              projection={"hold_id": 1, "hold_action": 1, "postings": 1}):
            role = "place" if entry.get("hold_action") == "place" else "close"
            result.setdefault(entry["hold_id"], {})[role] = entry
    return result


def _reserved_legs(entry: dict | None, reserved_id: str) -> list[dict]:
    return [p for p in (entry or {}).get("postings") or [] if logical_id(str(p.get("account"))) == reserved_id]


def _reservations_disagree(reserved_id: str, positions: dict[str, int], total: int, holds: dict, quotes: dict,
                           now: datetime, stuck_after: timedelta) -> bool:
    """The judgement of `reservation_stands` on what it read (pure)."""
    def inside(entry: dict | None) -> bool:
        return any(p["version"] <= positions.get(p["account"], 0) for p in _reserved_legs(entry, reserved_id))

    open_in_cut = {}
    for hold_id, pair in holds.items():
        if inside(pair.get("place")) and not inside(pair.get("close")):
            open_in_cut[hold_id] = sum(p["amount_minor"] for p in _reserved_legs(pair["place"], reserved_id) if p["amount_minor"] > 0)
    if total != sum(open_in_cut.values()):
        return True  # reserved money that no open reservation hold explains
    for hold_id, placed in open_in_cut.items():
        quote = quotes.get(hold_id)
        state = (quote or {}).get("state")
        if quote is None or (state == "open" and quote.get("reserved_minor") != placed):
            return True
        if state in TRANSIENT_QUOTE_STATES and _moved_at(quote) <= now - stuck_after:
            return True  # between two steps for longer than the stuck threshold
        if state not in LIVE_QUOTE_STATES and holds[hold_id].get("close") is None:
            return True  # finished, yet its reservation was never closed
    for quote_id, quote in quotes.items():
        pair = holds.get(quote_id, {})
        if quote.get("state") == "open" and quote_id not in open_in_cut and (pair.get("place") is None or inside(pair.get("place"))):
            return True  # open, but no reservation (or one closed inside the cut)
    return False


def _moved_at(quote: dict) -> datetime:
    """When a quote last took a step the document records (creation, or its decision)."""
    moments = [quote.get("created_at"), (quote.get("decision") or {}).get("at")]
    return max((m for m in moments if isinstance(m, datetime)), default=datetime.min)


# -- escrow ----------------------------------------------------------------------------------------------
def escrow_stands(platform: Platform, trade_id: str, account_id: str | None) -> bool:
    """Whether a closed trade's escrow really still holds money: its hold has no closing
    entry, or the escrow's projection (read after the close) already holds the close and is
    still not zero."""
    if account_id is None:
        return True
    close = _hold_entries(platform, [trade_id]).get(trade_id, {}).get("close")
    if close is None:
        return True
    projection = platform.store.collection("balances").find_one({"_id": account_id}, projection={"version": 1, "balance_minor": 1})
    legs = [p for p in close.get("postings") or [] if p.get("account") == account_id]
    if not legs or projection is None:
        return True
    return projection.get("version", 0) >= legs[0]["version"] and projection.get("balance_minor") != 0


# -- user holds (incremental check) ---------------------------------------------------------------------------
def locked_stands(platform: Platform, account_id: str | None) -> bool:
    """Whether a `user.locked` account really disagrees with its holds: re-read its
    projection (version v), then the user's holds open now, then the entries claiming
    versions after v; the holds open at v — placed at or below v, closed above it or not at
    all — must add up to the projection's balance."""
    if account_id is None:
        return True
    account = parse_account_id(account_id)
    if account.kind != AccountKind.USER_LOCKED:
        return True
    store = platform.store
    projection = store.collection("balances").find_one({"_id": account_id}, projection={"version": 1, "balance_minor": 1}) or {}
    version, balance = projection.get("version", 0), projection.get("balance_minor", 0)
    open_now = {place.hold_id: place.model_dump() for place in platform.ledger.open_holds(account.owner)}
    later = _later_entries(platform, account_id, version)
    closed_later = sorted({e["hold_id"] for e in later if isinstance(e.get("hold_id"), str) and e.get("hold_action") != "place"})
    places = {**{h: pair["place"] for h, pair in _hold_entries(platform, closed_later).items() if "place" in pair}, **open_now}
    held = 0
    for place in places.values():
        for posting in place.get("postings") or []:
            if posting.get("account") == account_id and posting.get("amount_minor", 0) > 0 and posting.get("version", 0) <= version:
                held += posting["amount_minor"]
    return held != balance


def _later_entries(platform: Platform, account_id: str, version: int) -> list[dict]:
    """The entries claiming `account_id`'s versions after `version`, up to the first one
    nobody claims yet (read in rounds of a few claims)."""
    found: list[dict] = []
    for round_number in range(LATER_VERSIONS_READ_MAX):
        start = version + 1 + 8 * round_number
        batch = entries_by_claims(platform.store, [claim_of(account_id, v) for v in range(start, start + 8)])
        found += batch
        if len(batch) < 8:
            return found
    return found
