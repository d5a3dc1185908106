"""Issue 10, first list, one test per bullet, on the real API: races are forced
deterministically by pausing one thread at a chosen store operation (the store's fault
hook) while another runs to the end; crashes are injected at every write and finished by
`recovery.resume_all`. Each test failed on the code before the issue (see its docstring)."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from core import approvals
from core.base.clock import ManualClock
from core.base.errors import TradeClosedError, TradeDecisionConflictError
from core.flows import adjustment, deposit, p2p, quotes, recovery, referral, treasury, withdrawal
from core.flowtests.sandbox import CHECKER, CHECKER_2, MAKER, Sandbox
from core.ledger import accounts as acct
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform
from tests.helpers import make_test_store
from tests.principals import ADMIN, ADMIN_2

WRITES = frozenset({"insert_one", "insert_many", "find_one_and_update", "update_one", "update_many"})
PAUSE_TIMEOUT_SECONDS = 30  # only a deadlock (a bug) ever waits this long


class Pause:
    """A fault hook that stops the thread named `thread` at its `nth` operation matching
    (phase, collection, operation) until `go()`; every other thread passes freely."""

    def __init__(self, thread: str, phase: str, collection: str, operation: str, nth: int = 1) -> None:
        self.thread, self.where, self.nth, self.seen = thread, (phase, collection, operation), nth, 0
        self.reached, self._go = threading.Event(), threading.Event()

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if threading.current_thread().name != self.thread or (phase, collection, operation) != self.where:
            return
        self.seen += 1
        if self.seen == self.nth:
            self.reached.set()
            assert self._go.wait(PAUSE_TIMEOUT_SECONDS), "paused thread never released"

    def go(self) -> None:
        self._go.set()


def race(platform: Platform, pause: Pause, first, second):
    """Run `first` in the paused thread until it reaches the pause, run `second` to the end
    meanwhile, then let `first` finish. Returns ((first result, first error), (second
    result, second error))."""
    outcome: dict = {}

    def run(name, action):
        try:
            outcome[name] = (action(), None)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome[name] = (None, error)

    platform.store.fault_hook = pause
    thread = threading.Thread(target=run, args=("first", first), name=pause.thread)
    thread.start()
    while not pause.reached.wait(0.01):
        assert thread.is_alive(), f"the first caller ended before the pause: {outcome.get('first')}"
    run("second", second)
    pause.go()
    thread.join(PAUSE_TIMEOUT_SECONDS)
    platform.store.fault_hook = None
    return outcome["first"], outcome["second"]


def events(platform: Platform, **query) -> list[dict]:
    return list(platform.store.raw("audit").find(query, sort=[("seq", 1)]))


@pytest.fixture
def box(platform, clock) -> Sandbox:
    sandbox = Sandbox(platform=platform, clock=clock)
    sandbox.fund("sam", "BTC", "1")
    return sandbox


def _disputed_trade(platform: Platform) -> dict:
    trade = p2p.open_trade(platform, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.5", idempotency_key="t")
    p2p.mark_paid(platform, SYSTEM, trade_id=trade["_id"], buyer="bea")
    return p2p.open_dispute(platform, SYSTEM, trade_id=trade["_id"], user_id="bea", reason="no release")


def _minor(platform: Platform, account) -> int:
    return platform.ledger.balance(account).minor


def interleave(platform: Platform, collection: str, loser, winner):
    """The shape of both bullet-1 races: the loser reads the document, then the winner's
    compare-and-set lands (and the winner stops right there), then the loser runs to its
    end, then the winner finishes. Returns ((loser result, error), (winner result, error))."""
    outcome: dict = {}
    read = Pause("loser", "after", collection, "find_one")
    decided = Pause("winner", "after", collection, "find_one_and_update")
    platform.store.fault_hook = lambda *where: (read(*where), decided(*where))

    def run(name, action):
        try:
            outcome[name] = (action(), None)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome[name] = (None, error)

    threads = {name: threading.Thread(target=run, args=(name, action), name=name)
               for name, action in (("loser", loser), ("winner", winner))}
    for name, pause in (("loser", read), ("winner", decided)):
        threads[name].start()
        while not pause.reached.wait(0.01):
            assert threads[name].is_alive(), f"the {name} ended before its pause: {outcome.get(name)}"
    for name, pause in (("loser", read), ("winner", decided)):
        pause.go()
        threads[name].join(PAUSE_TIMEOUT_SECONDS)
    platform.store.fault_hook = None
    return outcome["loser"], outcome["winner"]


# -- bullet 1: dispute misattribution; buyer cancel racing release ------------------------------
def test_dispute_resolved_both_ways_at_once_loser_gets_the_winners_decision(box):
    """Bob (to the seller) reads the disputed trade; Ann's resolution to the buyer lands
    first. Before: Bob's call "succeeded" (the state already equalled `closing`), moved the
    escrow Ann's way and wrote the only `p2p:<id>:resolved` event, naming Bob and the seller."""
    platform = box.platform
    trade = _disputed_trade(platform)
    (_, bob_error), (ann_done, ann_error) = interleave(
        platform, "p2p_trades",
        lambda: p2p.resolve_dispute(platform, ADMIN_2, trade_id=trade["_id"], to="seller", reason="no proof"),
        lambda: p2p.resolve_dispute(platform, ADMIN, trade_id=trade["_id"], to="buyer", reason="bank proof"),
    )
    assert ann_error is None and ann_done["state"] == "resolved_buyer"
    assert isinstance(bob_error, TradeDecisionConflictError) and isinstance(bob_error, TradeClosedError)
    assert bob_error.details["winner"] == {"name": "resolved", "to": "resolved_buyer", "by": ADMIN.name, "party": None}
    resolved = events(platform, event_key=f"p2p:{trade['_id']}:resolved")
    assert len(resolved) == 1 and resolved[0]["actor"] == ADMIN.name and resolved[0]["data"]["to"] == "resolved_buyer"
    assert events(platform, actor=ADMIN_2.name) == []
    assert _minor(platform, acct.user_available("bea", "BTC")) == 49_500_000  # the money went Ann's way
    assert _minor(platform, acct.user_available("sam", "BTC")) == 50_000_000


def test_buyer_cancel_racing_release_the_loser_is_told(box):
    """The seller's release reads the open trade; the buyer's cancel lands first. Before:
    the release found the trade `closing` and returned it as its own success (the escrow
    went back to the seller, the seller was told nothing)."""
    platform = box.platform
    trade = p2p.open_trade(platform, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.5", idempotency_key="t")
    seller_desk = Principal(name="seller_desk", role=Role.SYSTEM)  # the backend, on the seller's behalf
    (_, release_error), (cancelled, cancel_error) = interleave(
        platform, "p2p_trades",
        lambda: p2p.release_trade(platform, seller_desk, trade_id=trade["_id"], seller="sam"),
        lambda: p2p.cancel_trade(platform, SYSTEM, trade_id=trade["_id"], user_id="bea"),
    )
    assert cancel_error is None and cancelled["state"] == "cancelled"
    assert isinstance(release_error, TradeDecisionConflictError)
    assert release_error.details["winner"]["name"] == "cancel" and release_error.details["winner"]["party"] == "bea"
    decided = [e for e in events(platform, target=trade["_id"]) if e["type"] in ("p2p.release", "p2p.cancel")]
    assert [(e["type"], e["actor"], e["data"]["party"]) for e in decided] == [("p2p.cancel", SYSTEM.name, "bea")]
    assert events(platform, actor="seller_desk") == []
    assert _minor(platform, acct.user_available("sam", "BTC")) == 100_000_000
    assert _minor(platform, acct.user_available("bea", "BTC")) == 0


# -- bullet 2: an approval executed twice by a process whose clock runs ahead -------------------
def test_adjustment_executed_by_a_skewed_second_process_is_credited_once(platform, clock):
    """The approver's execution is paused before its entry; a second process whose clock
    runs 61 s ahead resumes the request meanwhile. Before (d4e8f12): the skewed process
    took over the "stale" claim and the 25 USDT adjustment was credited 50. Now there is
    no claim: both executions post the same keyed entry, so the user gets 25 once, one
    result, one `approval.executed` event."""
    request = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="USDT", amount="25",
                                            reason="goodwill", idempotency_key="adj")
    skewed = Platform.open(platform.store, ManualClock(clock.now() + timedelta(seconds=61)))
    pause = Pause("checker", "after", "entries", "insert_one")  # journaled, not yet applied
    (first, first_error), (second, second_error) = race(
        platform, pause,
        lambda: approvals.approve(platform, CHECKER, request["_id"], "ok"),
        lambda: approvals.resume_approved(skewed, SYSTEM),
    )
    assert first_error is None and second_error is None and second.done == [request["_id"]]
    assert _minor(platform, acct.user_available("uma", "USDT")) == 25_000_000
    assert platform.store.raw("entries").count_documents({"flow_ref": request["_id"]}) == 1
    final = approvals.get_approval(platform, CHECKER, request["_id"])
    assert final["result"]["ok"] is True and first["result"] == final["result"]
    assert len(events(platform, event_key=f"approval:{request['_id']}:executed")) == 1


# -- bullet 3: audit events lost for good after a crash ------------------------------------------
class Crash(Exception):
    """The process dies here."""


class CrashAfter:
    """Crash after the `nth` write matching (collection, operation) has reached the store."""

    def __init__(self, collection: str, operation: str, nth: int = 1) -> None:
        self.where, self.nth, self.seen = (collection, operation), nth, 0

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if phase == "after" and (collection, operation) == self.where:
            self.seen += 1
            if self.seen == self.nth:
                raise Crash(f"died after {operation} on {collection}")


def _crash(platform: Platform, hook, action) -> None:
    platform.store.fault_hook = hook
    try:
        with pytest.raises(Crash):
            action()
    finally:
        platform.store.fault_hook = None


def test_vote_recorded_then_crash_its_event_is_written_by_recovery(platform):
    """Before: the vote was pushed, the process died before `approval.approved`; nothing
    ever wrote it (a retry by the same approver is refused as a duplicate)."""
    request = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="9",
                                            reason="two approvers", idempotency_key="adj2")
    assert request["approvals_required"] == 2
    _crash(platform, CrashAfter("approvals", "find_one_and_update"),
           lambda: approvals.approve(platform, CHECKER, request["_id"], "one"))
    assert approvals.get_approval(platform, CHECKER, request["_id"])["approvals"][0]["by"] == CHECKER.name
    report = recovery.resume_all(platform, SYSTEM)
    assert report.ok and report.events_flushed == 1
    vote = events(platform, event_key=f"approval:{request['_id']}:approve:{CHECKER.name}")
    assert len(vote) == 1 and vote[0]["actor"] == CHECKER.name and vote[0]["data"]["decision"] == "approve"


def test_result_stored_then_crash_executed_event_is_written_by_recovery(platform):
    """Before: resume only selected requests without a result, so `approval.executed` was
    lost for good after a crash between storing the result and appending the event."""
    request = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="1",
                                            reason="one approver", idempotency_key="adj1")
    # the vote's update is the 1st find_one_and_update on approvals, the result's the 2nd
    _crash(platform, CrashAfter("approvals", "find_one_and_update", nth=2),
           lambda: approvals.approve(platform, CHECKER, request["_id"], "ok"))
    assert approvals.get_approval(platform, CHECKER, request["_id"])["result"]["ok"] is True
    assert events(platform, event_key=f"approval:{request['_id']}:executed") == []
    recovery.resume_all(platform, SYSTEM)
    executed = events(platform, event_key=f"approval:{request['_id']}:executed")
    assert len(executed) == 1 and executed[0]["actor"] == CHECKER.name
    assert _minor(platform, acct.user_available("uma", "BTC")) == 100_000_000


def test_dispute_moved_to_closing_then_crash_resolution_event_survives(box):
    """Before: the resumed flow moved the escrow with no `p2p:<id>:resolved` event at all."""
    platform = box.platform
    trade = _disputed_trade(platform)
    _crash(platform, CrashAfter("p2p_trades", "find_one_and_update"),
           lambda: p2p.resolve_dispute(platform, ADMIN, trade_id=trade["_id"], to="seller", reason="no proof"))
    assert p2p.get_trade(platform, trade["_id"])["state"] == "closing"
    recovery.resume_all(platform, SYSTEM)
    assert p2p.get_trade(platform, trade["_id"])["state"] == "resolved_seller"
    resolved = events(platform, event_key=f"p2p:{trade['_id']}:resolved")
    assert len(resolved) == 1 and resolved[0]["actor"] == ADMIN.name and resolved[0]["data"]["to"] == "resolved_seller"
    assert _minor(platform, acct.user_available("sam", "BTC")) == 100_000_000


def _two_approvals(platform: Platform, request: dict) -> None:
    for checker in (CHECKER, CHECKER_2):
        current = approvals.get_approval(platform, checker, request["_id"])
        voted = any(vote["by"] == checker.name for vote in current["approvals"])
        if current["state"] == "pending" and not voted or current["state"] == "approved" and current["result"] is None:
            approvals.approve(platform, checker, request["_id"], "checked")


def _flow_withdrawal(platform: Platform) -> dict:
    document = withdrawal.request_withdrawal(platform, SYSTEM, user_id="sam", asset="BTC", amount="0.6",
                                             destination="bc1q", idempotency_key="wd")
    _two_approvals(platform, {"_id": document["approval_id"]})
    return approvals.get_approval(platform, CHECKER, document["approval_id"])


def _flow_adjustment(platform: Platform, amount: str = "1", key: str = "adj") -> dict:
    request = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount=amount,
                                            reason="fix", idempotency_key=key)
    _two_approvals(platform, request)
    return approvals.get_approval(platform, CHECKER, request["_id"])


def _flow_fee_sweep(platform: Platform) -> dict:
    request = treasury.request_fee_sweep(platform, MAKER, asset="BTC", amount="0.001", reason="revenue",
                                         idempotency_key="sweep")
    _two_approvals(platform, request)
    return approvals.get_approval(platform, CHECKER, request["_id"])


def _flow_manual_deposit(platform: Platform) -> dict:
    request = deposit.request_manual_deposit(platform, MAKER, user_id="uma", asset="GBP", amount="100",
                                             reference="bank 1", reason="statement", idempotency_key="man")
    _two_approvals(platform, request)
    return approvals.get_approval(platform, CHECKER, request["_id"])


APPROVAL_FLOWS = {
    "withdrawal": _flow_withdrawal,
    "adjustment": _flow_adjustment,
    "two-approver adjustment": lambda platform: _flow_adjustment(platform, "9", "adj9"),
    "fee sweep": _flow_fee_sweep,
    "manual deposit": _flow_manual_deposit,
}


def _count_writes(flow) -> int:
    sandbox = Sandbox.create(make_test_store())
    _prepare(sandbox)
    counted = {"writes": 0}

    def count(phase, collection, operation):
        counted["writes"] += phase == "before" and operation in WRITES

    sandbox.platform.store.fault_hook = count
    flow(sandbox.platform)
    sandbox.platform.store.fault_hook = None
    _dispose(sandbox)
    return counted["writes"]


def _prepare(sandbox: Sandbox) -> None:
    sandbox.fund("sam", "BTC", "1")
    sandbox.fund("fay", "BTC", "1")
    withdrawal.request_withdrawal(sandbox.platform, SYSTEM, user_id="fay", asset="BTC", amount="0.2",
                                  destination="bc1q", idempotency_key="fees")  # fee revenue for the sweep


def _dispose(sandbox: Sandbox) -> None:
    if not sandbox.platform.store.embedded:
        sandbox.platform.store.drop()


class CrashAtWrite:
    def __init__(self, nth: int) -> None:
        self.nth, self.writes = nth, 0

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        if operation in WRITES and phase == "after":
            self.writes += 1
            if self.writes == self.nth:
                raise Crash(f"died after write #{self.nth} ({operation} on {collection})")


def _assert_every_change_audited(platform: Platform, request: dict) -> None:
    request_id = request["_id"]
    keys = {e["event_key"]: e for e in events(platform, target=request_id)}
    assert keys[f"approval:{request_id}:requested"]["actor"] == request["requested_by"]
    for vote in request["approvals"]:
        event = keys[f"approval:{request_id}:approve:{vote['by']}"]
        assert event["actor"] == vote["by"] and event["data"]["decision"] == "approve"
    assert request["state"] == "approved" and request["result"]["ok"] is True
    assert keys[f"approval:{request_id}:executed"]["data"]["result"]["ok"] is True
    assert len(keys) == 2 + len(request["approvals"])  # nothing twice, nothing extra


@pytest.mark.parametrize("name", sorted(APPROVAL_FLOWS))
def test_crash_at_every_write_of_approval_flows_leaves_no_event_missing(name):
    """Before: 44 of these crash points left an approval or execution event missing."""
    flow = APPROVAL_FLOWS[name]
    for nth in range(1, _count_writes(flow) + 1):
        sandbox = Sandbox.create(make_test_store())
        _prepare(sandbox)
        platform = sandbox.platform
        before = {a: _minor(platform, a) for a in (acct.user_available("uma", "BTC"), acct.fees("BTC"))}
        platform.store.fault_hook = CrashAtWrite(nth)
        try:
            flow(platform)
        except Crash:
            pass
        finally:
            platform.store.fault_hook = None
        report = recovery.resume_all(platform, SYSTEM)
        assert report.ok, (name, nth, report.failed)
        request = flow(platform)  # the client and the checkers retry with the same keys
        _assert_every_change_audited(platform, request)
        moved = {a: _minor(platform, a) - before[a] for a in before}
        assert moved == _count_once(name), (name, nth, moved)
        assert platform.ledger.audit.verify().ok
        _dispose(sandbox)


def _count_once(name: str) -> dict:
    uma, fees = acct.user_available("uma", "BTC"), acct.fees("BTC")
    return {
        "withdrawal": {uma: 0, fees: 600_000},
        "adjustment": {uma: 100_000_000, fees: 0},
        "two-approver adjustment": {uma: 900_000_000, fees: 0},
        "fee sweep": {uma: 0, fees: -100_000},
        "manual deposit": {uma: 0, fees: 0},
    }[name]


# -- bullet 4: a referral commission dropped when a fee sweep lands before it ------------------
def test_commission_owed_when_the_fee_wallet_was_swept_is_paid_by_recovery(box):
    """A fee sweep lands between the settle entry and its commission. Before: the pre-check
    failed, the error was swallowed, the flow was marked `referral_done`, nothing was
    journaled and the integrity check stayed clean. Now the commission is recorded as
    owed, listed by `referral.owed_commissions`, and paid by recovery once fees allow."""
    platform = box.platform
    platform.store.collection("user_accounts").insert_one({"user_id": "sam", "referred_by": "gus"})

    def sweep_first(phase, collection, operation):
        if (phase, collection, operation) == ("before", "user_accounts", "find_one"):
            platform.store.fault_hook = None
            fees = _minor(platform, acct.fees("BTC"))
            request = treasury.request_fee_sweep(platform, MAKER, asset="BTC", amount=str(Decimal(fees).scaleb(-8)),
                                                 reason="sweep everything", idempotency_key="sweep-all")
            approvals.approve(platform, CHECKER, request["_id"], "ok")

    platform.store.fault_hook = sweep_first
    settled = withdrawal.request_withdrawal(platform, SYSTEM, user_id="sam", asset="BTC", amount="0.2",
                                            destination="bc1q", idempotency_key="wd-ref")
    assert settled["state"] == "settled" and _minor(platform, acct.fees("BTC")) == 0
    assert settled["referral_done"] is False and settled["referral_owed"] == [settled["settle_entry_id"]]
    assert platform.store.raw("entries").count_documents({"type": "referral.commission"}) == 0
    owed = referral.owed_commissions(platform)
    assert owed == [{"collection": "withdrawals", "flow_id": settled["_id"], "state": "settled",
                     "owed_entry_ids": [settled["settle_entry_id"]]}]
    assert len(events(platform, event_key=f"withdrawal:{settled['_id']}:referral_owed")) == 1
    assert _owed_findings(platform) == [settled["_id"]]  # the integrity report names it
    assert recovery.resume_all(platform, SYSTEM).commissions_owed == 1  # the wallet is still empty
    box.fund("zed", "BTC", "1")
    withdrawal.request_withdrawal(platform, SYSTEM, user_id="zed", asset="BTC", amount="0.5", destination="bc1q",
                                  idempotency_key="more-fees")  # zed has no referrer: 0.005 BTC of fees
    assert recovery.resume_all(platform, SYSTEM).commissions_owed == 0
    assert _minor(platform, acct.user_available("gus", "BTC")) == 40_000  # 20% of the 0.002 fee
    assert referral.owed_commissions(platform) == []
    assert withdrawal.get_withdrawal(platform, settled["_id"])["referral_done"] is True
    assert _owed_findings(platform) == []


def _owed_findings(platform: Platform) -> list[str]:
    from core.integrity import check_platform

    report = check_platform(platform, ADMIN, record=False)
    return [f.subject for f in report.findings if f.kind == "commission_owed"]


# -- bullet 5: sweeps stop at the first error ----------------------------------------------------
def test_timeout_sweep_isolates_a_trade_it_cannot_finish(box, clock):
    """Before: `cancel_timed_out` aborted on its first exception and the other due trade
    stayed open."""
    platform = box.platform
    good = p2p.open_trade(platform, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.1", idempotency_key="g")
    broken = {  # a closing trade whose escrow was never placed
        **{name: value for name, value in good.items() if name not in ("escrow_entry_id", "hold_placers")},
        "_id": "p2p_0broken", "state": "closing", "closing_to": "cancelled", "escrow_entry_id": None,
    }
    platform.store.raw("p2p_trades").insert_one(broken)
    # and one a hand edit broke: read through its model, it is refused by name, alone
    platform.store.raw("p2p_trades").insert_one({**broken, "_id": "p2p_1malformed", "amount_minor": "1"})
    clock.advance(platform.config.p2p_payment_timeout)
    report = p2p.cancel_timed_out(platform, SYSTEM)
    assert report.done == [good["_id"]] and sorted(report.failed) == ["p2p_0broken", "p2p_1malformed"]
    assert report.failed["p2p_0broken"]["error"] == "hold_not_found"
    assert report.failed["p2p_1malformed"]["error"] == "malformed_document"
    assert p2p.get_trade(platform, good["_id"])["state"] == "cancelled"


def test_recovery_sweep_isolates_a_flow_it_cannot_finish(box):
    """Before: `resume_all` stopped at the first failing document."""
    platform = box.platform
    platform.store.raw("withdrawals").insert_one({  # approved, but its hold never existed
        "_id": "wd_0broken", "state": "approved", "user": "sam", "asset": "BTC", "amount_minor": 10, "fee_minor": 1,
        "net_minor": 9, "destination": "x", "approvals_needed": 0, "referral_done": False,
    })
    trade = p2p.open_trade(platform, SYSTEM, seller="sam", buyer="bea", asset="BTC", amount="0.1", idempotency_key="g")
    platform.store.raw("p2p_trades").update_one({"_id": trade["_id"]}, {"$set": {
        "state": "closing", "closing_to": "cancelled"}})  # as a crash leaves it
    report = recovery.resume_all(platform, SYSTEM)
    assert list(report.failed) == ["wd_0broken"] and not report.ok
    assert p2p.get_trade(platform, trade["_id"])["state"] == "cancelled"


def test_cli_recover_finishes_half_done_flows_and_approvals(box, monkeypatch, capsys):
    """`python -m core recover` finishes flows and approvals too (it only projected entries)."""
    from core.cli import main as cli

    platform = box.platform
    trade = _disputed_trade(platform)
    _crash(platform, CrashAfter("p2p_trades", "find_one_and_update"),
           lambda: p2p.resolve_dispute(platform, ADMIN, trade_id=trade["_id"], to="buyer", reason="proof"))
    request = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="1", reason="fix",
                                            idempotency_key="adj-cli")
    _crash(platform, CrashAfter("approvals", "find_one_and_update", nth=2),
           lambda: approvals.approve(platform, CHECKER, request["_id"], "ok"))
    cli.build_parser()  # import every command module first: none may bind the patched opener below
    monkeypatch.setattr(cli.common, "open_database_store", lambda: platform.store)
    assert cli.main(["recover", "--json"]) == cli.EXIT_OK
    assert '"events_flushed"' in capsys.readouterr().out
    assert p2p.get_trade(platform, trade["_id"])["state"] == "resolved_buyer"
    assert len(events(platform, event_key=f"p2p:{trade['_id']}:resolved")) == 1
    assert len(events(platform, event_key=f"approval:{request['_id']}:executed")) == 1


class Pauses:
    """Several pauses of one thread, in order: `at(n)` waits until the n-th was reached."""

    def __init__(self, thread: str, where: list[tuple[str, str, str, int]]) -> None:
        self.pauses = [Pause(thread, phase, collection, operation, nth) for phase, collection, operation, nth in where]

    def __call__(self, phase: str, collection: str, operation: str) -> None:
        for pause in self.pauses:
            pause(phase, collection, operation)


def test_quote_payment_refused_while_a_concurrent_execution_goes_through_follows_the_journal(platform, clock):
    """Executor A enters `executing`, the user's funds leave, A's execution is refused;
    before A records the refusal the funds are back and executor B (a retry) executes the
    quote. A must not expire it: the reservation was consumed, so the quote is executed —
    once — and A is told so. (With the two-entry execution, a refusal racing a payment
    could strand the payment: the user paid and the reservation was released.)"""
    sandbox = Sandbox(platform=platform, clock=clock)
    sandbox.top_up("ETH", "10")
    sandbox.fund("alice", "BTC", "0.1")
    from core.flows import swap

    quote = swap.quote_swap(platform, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1",
                            idempotency_key="q")
    pauses = Pauses("A", [("before", "quotes", "find_one_and_update", 1), ("before", "quotes", "find_one_and_update", 2)])
    platform.store.fault_hook = pauses
    outcome: dict = {}

    def run_a():
        try:
            outcome["A"] = (swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], user_id="alice"), None)
        except Exception as error:  # noqa: BLE001 - inspected below
            outcome["A"] = (None, error)

    thread = threading.Thread(target=run_a, name="A")
    thread.start()
    assert pauses.pauses[0].reached.wait(PAUSE_TIMEOUT_SECONDS)  # A checked the funds, about to decide
    withdrawal.request_withdrawal(platform, SYSTEM, user_id="alice", asset="BTC", amount="0.1", destination="x",
                                  idempotency_key="drain")  # the funds leave
    pauses.pauses[0].go()
    assert pauses.pauses[1].reached.wait(PAUSE_TIMEOUT_SECONDS)  # A was refused, about to record it
    sandbox.fund("alice", "BTC", "0.1")  # the funds are back
    executed = swap.execute_swap(platform, SYSTEM, quote_id=quote["_id"], user_id="alice")  # B, a retry
    assert executed["state"] == "executed"
    pauses.pauses[1].go()
    thread.join(PAUSE_TIMEOUT_SECONDS)
    platform.store.fault_hook = None
    a_result, a_error = outcome["A"]
    assert a_error is None and a_result["state"] == "executed"
    final = quotes.get_quote(platform, quote["_id"])
    assert final["state"] == "executed" and final["pay_entry_id"] == executed["pay_entry_id"]
    assert _minor(platform, acct.user_available("alice", "BTC")) == 0
    assert _minor(platform, acct.user_available("alice", "ETH")) == final["receive_minor"]
    assert platform.ledger.hold(quote["_id"])[1].hold_action == "consume"
    assert events(platform, event_key=f"quote:{quote['_id']}:expired") == []
    assert len(events(platform, event_key=f"quote:{quote['_id']}:executed")) == 1


def test_approval_expiry_sweep_isolates_a_close_hook_that_fails(platform, clock):
    """Before: `expire_due` stopped at the first request whose close hook raised."""
    def broken_close(platform_, approval, principal):
        raise RuntimeError("the close hook's service is down")

    approvals.register_executor("test.brokenclose", lambda *args: {}, on_close=broken_close)
    broken = approvals.request_approval(platform, MAKER, kind="test.brokenclose", payload={}, asset=None,
                                        amount_minor=None, idempotency_key="broken", reason="r")
    fine = adjustment.request_adjustment(platform, MAKER, user_id="uma", asset="BTC", amount="1", reason="late",
                                         idempotency_key="late")
    clock.advance(platform.config.approval_ttl)
    report = approvals.expire_due(platform, SYSTEM)
    assert set(report.failed) == {broken["_id"]} and report.failed[broken["_id"]]["error"] == "RuntimeError"
    assert approvals.get_approval(platform, CHECKER, fine["_id"])["state"] == "expired"
    assert approvals.get_approval(platform, CHECKER, broken["_id"])["state"] == "expired"  # its hook is retried later
    assert len(events(platform, event_key=f"approval:{broken['_id']}:expired")) == 1


def test_quote_expiry_sweep_isolates_a_quote_it_cannot_release(platform, clock):
    """Before: `expire_due_quotes` stopped at the first quote it could not expire."""
    sandbox = Sandbox(platform=platform, clock=clock)
    sandbox.top_up("ETH", "10")
    sandbox.fund("alice", "BTC", "1")
    from core.flows import swap

    good = swap.quote_swap(platform, SYSTEM, user_id="alice", from_asset="BTC", to_asset="ETH", amount="0.1",
                           idempotency_key="good")
    platform.store.raw("quotes").insert_one({"_id": "q_0broken", "state": "expiring", "user": "alice"})  # no hold
    clock.advance(platform.config.quote_ttl)
    report = quotes.expire_due_quotes(platform, SYSTEM)
    assert report.done == [good["_id"]] and list(report.failed) == ["q_0broken"]
    assert quotes.get_quote(platform, good["_id"])["state"] == "expired"
