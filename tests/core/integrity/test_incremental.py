"""The incremental check: verifies only what moved since the last anchor, still names what
was edited behind the engine, falls back to a full check when it must, and keeps the run
and pass logs bounded."""

from __future__ import annotations



from core import approvals
from core.integrity import check_platform, request_projection_repair
from core.ledger.entries import entry_hash
from core.ledger.store import uncovered
from tests.core.integrity.books import healthy_platform, kinds
from tests.helpers import deposit
from tests.principals import ADMIN, ADMIN_2


# -- incremental ----------------------------------------------------------------------------------------
def test_incremental_check_verifies_only_what_changed(platform):
    healthy_platform(platform)
    first = check_platform(platform, ADMIN)
    assert first.mode == "full" and first.ok and "no verified anchor yet" in first.notes[0]
    for number in range(3):
        deposit(platform.ledger, "u9", f"{number + 1}", "USDT", key=f"new-{number}")
    second = check_platform(platform, ADMIN)
    assert second.mode == "incremental" and second.ok, second.findings
    assert second.entries_checked == 3 + 1  # the new entries, plus each slice's verified starting link
    assert second.accounts_checked == 2  # u9's USDT and the outside world's
    quiet = check_platform(platform, ADMIN)
    assert quiet.mode == "incremental" and quiet.entries_checked == 0 and quiet.ok
    assert check_platform(platform, ADMIN, full=True).mode == "full"


def test_incremental_check_names_a_new_entry_edited_behind_the_engine(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    entry = deposit(platform.ledger, "u9", "5", "USDT", key="late-edit")
    platform.store.raw("entries").update_one({"_id": entry.id}, {"$set": {"memo": "nothing to see"}})
    report = check_platform(platform, ADMIN)
    assert report.mode == "incremental" and ("entry_edited", entry.id) in kinds(report)
    again = check_platform(platform, ADMIN)  # a failing slice stays behind the anchor: reported again
    assert ("entry_edited", entry.id) in kinds(again)


def test_incremental_check_names_the_projection_of_an_account_that_moved(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    deposit(platform.ledger, "u1", "1", "BTC", key="more-btc")
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 5}})
    report = check_platform(platform, ADMIN)
    assert report.mode == "incremental"
    assert kinds(report) == [("projection_mismatch", "user.available:u1:BTC")]


def test_incremental_check_verifies_new_audit_events_from_the_anchor(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok  # appends its own integrity.check event
    for number in range(3):
        platform.ledger.audit.append(type="test.action", actor="alice", role="admin", target=f"t{number}")
    head = platform.store.raw("audit").find_one({"target": "t2"})  # the three appends share this thread's stream
    platform.store.raw("audit").update_one({"stream": head["stream"], "seq": head["seq"] - 1}, {"$set": {"actor": "mallory"}})
    report = check_platform(platform, ADMIN, record=False)
    assert report.mode == "incremental"
    assert ("audit_chain_broken", f"audit stream {head['stream']} seq {head['seq'] - 1}") in kinds(report)


def test_incremental_check_names_a_chain_hole_in_new_entries(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    first = deposit(platform.ledger, "u9", "1", "USDT", key="hole-1")
    deposit(platform.ledger, "u9", "2", "USDT", key="hole-2")
    platform.store.raw("entries").delete_one({"_id": first.id})
    report = check_platform(platform, ADMIN, record=False)
    assert not report.ok and {"chain_broken", "rollup_stalled"} & {f.kind for f in report.findings}


def test_incremental_check_falls_back_to_full_after_a_rollup_rebuild(platform):
    from core import rollups

    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    rollups.rebuild(platform.store)
    report = check_platform(platform, ADMIN)
    assert report.mode == "full" and "rebuilt" in report.notes[0] and report.ok


def test_full_check_finds_rollups_that_disagree_with_the_journal(platform):
    from core import rollups

    healthy_platform(platform)
    rollups.update(platform.store)
    platform.store.raw(rollups.TOTALS).update_one({"kind": "platform.fees"}, {"$inc": {"balance_minor": 3}})
    report = check_platform(platform, ADMIN, full=True)
    assert ("rollup_mismatch", "platform.fees USDT") in kinds(report)
    rollups.rebuild(platform.store)
    assert check_platform(platform, ADMIN, full=True).ok


def test_incremental_check_cost_grows_with_new_entries_not_the_journal(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok

    def cost_of_one_new_entry(key: str) -> tuple[int, int]:
        deposit(platform.ledger, "u9", "1", "USDT", key=key)
        platform.store.log.reset()
        report = check_platform(platform, ADMIN, record=False)
        assert report.mode == "incremental" and report.ok, report.findings
        assert uncovered(platform.store.log.records) == []
        return platform.store.log.count, report.entries_checked

    small = cost_of_one_new_entry("one-new")
    for number in range(40):
        deposit(platform.ledger, f"old{number}", "1", "USDT", key=f"old-{number}")
    check_platform(platform, ADMIN)
    assert cost_of_one_new_entry("another-new")[0] == small[0]


def test_runs_anchor_the_account_heads_and_the_full_check_verifies_the_anchor(platform):
    healthy_platform(platform)
    last = deposit(platform.ledger, "u7", "1", "USDT", key="last-one")
    first = check_platform(platform, ADMIN)
    assert first.mode == "full" and first.heads_digest
    anchors = platform.store.raw("audit").count_documents({"type": "ledger.anchor"})
    quiet = check_platform(platform, ADMIN)  # incremental, nothing changed: a delta anchor of no account, chained
    assert quiet.mode == "incremental" and quiet.heads_digest and quiet.heads_digest != first.heads_digest
    assert platform.store.raw("audit").count_documents({"type": "ledger.anchor"}) == anchors + 1
    # a consistent rewrite of the newest entry and of its accounts' projections: every chain
    # still links, only the anchor shows it
    raw = platform.store.raw("entries")
    document = raw.find_one({"_id": last.id})
    rewritten = dict(document, memo="rewritten")
    rewritten["entry_hash"] = entry_hash(rewritten)
    raw.replace_one({"_id": last.id}, rewritten)
    for posting in document["postings"]:
        platform.store.raw("balances").update_one({"_id": posting["account"]}, {"$set": {"head_hash": rewritten["entry_hash"]}})
    report = check_platform(platform, ADMIN, full=True)
    assert "anchor_mismatch" in {f.kind for f in report.findings} and report.heads_digest is None


def test_rollup_pass_log_is_pruned_behind_the_anchor(platform, monkeypatch):
    from core import rollups
    from core.integrity import incremental

    monkeypatch.setattr(incremental, "PASS_LOG_KEPT_BEHIND", 1)
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok
    for number in range(3):
        deposit(platform.ledger, "u9", "1", "USDT", key=f"prune-{number}")
        assert check_platform(platform, ADMIN).ok
    passes = sorted(d["pass"] for d in platform.store.raw(rollups.PASSES).find())
    assert len(passes) <= 2 and passes[-1] == incremental.read_anchor(platform.store).pass_number


def test_a_projection_edited_behind_the_anchor_stays_reported_until_repaired(platform):
    healthy_platform(platform)
    assert check_platform(platform, ADMIN).ok  # full, anchors
    platform.store.raw("balances").update_one({"_id": "user.available:u1:BTC"}, {"$inc": {"balance_minor": 1}})
    found = check_platform(platform, ADMIN, full=True)
    assert "projection_mismatch" in {f.kind for f in found.findings}
    again = check_platform(platform, ADMIN)  # nothing moved in the journal: an incremental run would see nothing
    assert again.mode == "full" and "projection_mismatch" in {f.kind for f in again.findings}
    assert any("critical problems" in note for note in again.notes)
    request = request_projection_repair(platform, ADMIN, "user.available:u1:BTC", "legacy write")
    approvals.approve(platform, ADMIN_2, request["_id"], "checked against the journal")
    assert check_platform(platform, ADMIN).ok  # full once more (the last run was critical), and clean
    assert check_platform(platform, ADMIN).mode == "incremental"
