"""The demo's 60 days of activity, driven through the real flow services (deposits,
withdrawals, swaps, instant trades, P2P with disputes, expired quotes, treasury and
adjustments with maker-checker), and the dirty legacy database built beside it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from decimal import Decimal

from core.ledger import accounts as acct
from core import approvals, integrity
from core.legacy import rebuild as legacy_rebuild
from core.base.clock import ManualClock
from core.base.errors import LedgerError
from core.flows import adjustment, deposit, instant, p2p, quotes, swap, treasury, withdrawal
from core.ledger import from_minor
from core.base.permissions import SYSTEM, Principal, Role
from core.platform import Platform

DEMO_END = datetime(2026, 11, 1, 0, 0, 0)  # the generated history's last day


@dataclass(frozen=True)
class DemoSize:
    users: int
    days: int
    seed: int = 2026


# -- activity through the real flow services ----------------------------------------------------------
DEMO_ASSETS = ("BTC", "ETH", "USDT", "USDC", "SOL", "LTC", "GBP")
FLOAT_TOP_UP = {"BTC": "40", "ETH": "600", "USDT": "2500000", "USDC": "1500000", "SOL": "12000", "LTC": "20000", "GBP": "2000000"}
DEPOSIT_RANGE_MAJOR = {"BTC": ("0.01", "0.8"), "ETH": ("0.1", "9"), "USDT": ("50", "9000"), "USDC": ("50", "7000"),
                       "SOL": ("1", "90"), "LTC": ("1", "90"), "GBP": ("20", "5000")}
EVENT_WEIGHTS = (("deposit", 5), ("withdrawal", 3), ("swap", 4), ("instant_buy", 3), ("instant_sell", 2),
                 ("p2p", 3), ("expired_quote", 1))
TREASURY_MAKER = Principal(name="ops.treasury", role=Role.ADMIN)
CHECKERS = (Principal(name="admin2", role=Role.ADMIN), Principal(name="ops.checker", role=Role.ADMIN))
DISPUTE_DESK = Principal(name="ops.disputes", role=Role.ADMIN)


class _Activity:
    """Drives the flows for the demo; counts what happened and what core refused."""

    def __init__(self, platform: Platform, clock: ManualClock, user_ids: list[str], rng: random.Random) -> None:
        self.platform, self.clock, self.user_ids, self.rng = platform, clock, user_ids, rng
        self.counts: dict[str, int] = {}
        self.serial = 0

    def key(self, what: str) -> str:
        self.serial += 1
        return f"demo:{what}:{self.serial}"

    def attempt(self, name: str, action) -> object:
        """Run one flow step; a refusal (insufficient funds, a moved price...) is part of life."""
        try:
            result = action()
        except LedgerError as error:
            self.counts[f"refused.{error.code}"] = self.counts.get(f"refused.{error.code}", 0) + 1
            return None
        self.counts[name] = self.counts.get(name, 0) + 1
        return result

    def amount_text(self, asset: str, low: str, high: str) -> str:
        scale = self.platform.registry.get(asset).scale
        step = 10 ** max(scale - 4, 0)  # keep demo amounts readable (at most 4 decimals)
        low_minor, high_minor = (int(Decimal(v) * 10 ** scale) for v in (low, high))
        return from_minor(self.rng.randint(low_minor // step, high_minor // step) * step, asset, self.platform.registry).text()

    def available(self, user_id: str, asset: str) -> int:
        return self.platform.ledger.balance(acct.user_available(user_id, asset)).minor

    def share_of(self, user_id: str, asset: str, low: int, high: int) -> str | None:
        """A random `low`..`high` percent of the user's available balance, or None if empty."""
        minor = self.available(user_id, asset) * self.rng.randint(low, high) // 100
        step = 10 ** max(self.platform.registry.get(asset).scale - 4, 0)
        minor = minor // step * step
        return from_minor(minor, asset, self.platform.registry).text() if minor > 0 else None

    def approve(self, request: dict | None) -> None:
        for checker in CHECKERS:
            if request is None or request.get("state") != "pending":
                return
            request = self.attempt("approval.approve", lambda c=checker: approvals.approve(self.platform, c, request["_id"], "demo: checked"))

    def held_asset(self, user_id: str) -> str | None:
        held = [a for a, b in self.platform.ledger.user_balances(user_id).items() if b.available.minor > 0]
        return self.rng.choice(held) if held else None

    # -- one event of each kind ------------------------------------------------------------------
    def deposit(self, user_id: str, asset: str | None = None) -> None:
        asset = asset or self.rng.choice(DEMO_ASSETS)
        value = self.amount_text(asset, *DEPOSIT_RANGE_MAJOR[asset])
        payment = self.key("payment")
        self.attempt("deposit", lambda: deposit.record_deposit(
            self.platform, SYSTEM, user_id=user_id, asset=asset, amount=value, provider="demo-chain", payment_id=payment,
            confirmations=self.platform.config.confirmations_for(asset), idempotency_key=payment))

    def withdrawal(self, user_id: str) -> None:
        asset = self.held_asset(user_id)
        value = asset and self.share_of(user_id, asset, 5, 30)
        if value:
            self.attempt("withdrawal", lambda: withdrawal.request_withdrawal(
                self.platform, SYSTEM, user_id=user_id, asset=asset, amount=value, destination=f"addr-{user_id}-{asset.lower()}",
                idempotency_key=self.key("withdrawal")))

    def swap(self, user_id: str) -> None:
        asset = self.held_asset(user_id)
        value = asset and self.share_of(user_id, asset, 10, 40)
        if value:
            target = self.rng.choice([a for a in DEMO_ASSETS if a != asset])
            quote = self.attempt("swap.quote", lambda: swap.quote_swap(self.platform, SYSTEM, user_id=user_id, from_asset=asset,
                                                                          to_asset=target, amount=value, idempotency_key=self.key("swap")))
            if quote:
                self.attempt("swap", lambda: swap.execute_swap(self.platform, SYSTEM, quote_id=quote["_id"], user_id=user_id))

    def instant(self, user_id: str, side: str, execute: bool = True) -> None:
        if side == "buy":
            pay = self.rng.choice(("GBP", "USDT"))
            spend = self.share_of(user_id, pay, 10, 40)
            asset = self.rng.choice(("BTC", "ETH", "SOL", "LTC"))
            make = spend and (lambda: instant.quote_instant_buy(self.platform, SYSTEM, user_id=user_id, asset=asset, pay_asset=pay,
                                                                spend=spend, idempotency_key=self.key("buy")))
        else:
            asset = self.rng.choice(("BTC", "ETH", "SOL", "LTC"))
            value = self.share_of(user_id, asset, 10, 50)
            make = value and (lambda: instant.quote_instant_sell(self.platform, SYSTEM, user_id=user_id, asset=asset,
                                                                 receive_asset=self.rng.choice(("GBP", "USDT")), amount=value,
                                                                 idempotency_key=self.key("sell")))
        quote = make and self.attempt(f"instant_{side}.quote", make)
        if quote and execute:
            self.attempt(f"instant_{side}", lambda: instant.execute_instant(self.platform, SYSTEM, quote_id=quote["_id"], user_id=user_id))

    def expired_quote(self, user_id: str) -> None:
        self.instant(user_id, "buy", execute=False)  # left open: the expiry sweep returns the reservation
        self.clock.advance(self.platform.config.quote_ttl + timedelta(seconds=1))
        self.attempt("quote.expiry_sweep", lambda: quotes.expire_due_quotes(self.platform, SYSTEM))

    def p2p(self, seller: str, ending: str = "") -> dict | None:
        held = [a for a in DEMO_ASSETS if a != "GBP" and self.available(seller, a) > 0]  # P2P sells crypto for fiat
        asset = self.rng.choice(held) if held else "BTC"
        value = self.share_of(seller, asset, 10, 50)
        buyer = self.rng.choice([u for u in self.user_ids if u != seller])
        trade = value and self.attempt("p2p.open", lambda: p2p.open_trade(self.platform, SYSTEM, seller=seller, buyer=buyer, asset=asset,
                                                                          amount=value, fiat_amount=f"GBP {self.rng.randint(20, 9000)}",
                                                                          idempotency_key=self.key("p2p")))
        if not trade or ending == "open":
            return trade
        ending = ending or self.rng.choice(("release",) * 6 + ("cancel", "dispute_buyer", "dispute_seller"))
        trade_id = trade["_id"]
        if ending == "cancel":
            return self.attempt("p2p.cancel", lambda: p2p.cancel_trade(self.platform, SYSTEM, trade_id=trade_id, user_id=buyer))
        self.clock.advance(timedelta(minutes=self.rng.randint(2, 20)))
        trade = self.attempt("p2p.paid", lambda: p2p.mark_paid(self.platform, SYSTEM, trade_id=trade_id, buyer=buyer))
        if ending == "paid" or trade is None:
            return trade
        if ending == "release":
            return self.attempt("p2p.release", lambda: p2p.release_trade(self.platform, SYSTEM, trade_id=trade_id, seller=seller))
        trade = self.attempt("p2p.dispute", lambda: p2p.open_dispute(self.platform, SYSTEM, trade_id=trade_id, user_id=buyer,
                                                                      reason="seller says no payment arrived"))
        if ending == "dispute" or trade is None:
            return trade
        side = "buyer" if ending == "dispute_buyer" else "seller"
        return self.attempt("p2p.resolve", lambda: p2p.resolve_dispute(self.platform, DISPUTE_DESK, trade_id=trade_id, to=side,
                                                                        reason=f"bank statement checked: {side} is right"))

    # -- treasury and approvals ---------------------------------------------------------------------
    def treasury(self, kind: str, asset: str, value: str, approve: bool = True) -> dict | None:
        request_of = {"topup": treasury.request_liquidity_topup, "sweep": treasury.request_fee_sweep,
                      "withdraw": treasury.request_liquidity_withdrawal}[kind]
        request = self.attempt(f"treasury.{kind}.request", lambda: request_of(
            self.platform, TREASURY_MAKER, asset=asset, amount=value, reason=f"demo: {kind} {value} {asset}", idempotency_key=self.key(kind)))
        if approve:
            self.approve(request)
        return request

    def sweep_fees(self, share_percent: int = 60) -> None:
        for asset in DEMO_ASSETS:
            minor = self.platform.ledger.balance(acct.fees(asset)).minor * share_percent // 100
            if minor > 0:
                self.treasury("sweep", asset, from_minor(minor, asset, self.platform.registry).text())

    def adjustment(self, user_id: str, approve: bool = True) -> dict | None:
        asset = self.rng.choice(("GBP", "USDT"))
        request = self.attempt("adjustment.request", lambda: adjustment.request_adjustment(
            self.platform, TREASURY_MAKER, user_id=user_id, asset=asset, amount=self.amount_text(asset, "5", "50"),
            reason="demo: goodwill credit after a support ticket", idempotency_key=self.key("adjustment")))
        if approve:
            self.approve(request)
        return request

    def day(self, number: int, events: int) -> None:
        kinds, weights = zip(*EVENT_WEIGHTS)
        for _ in range(events):
            self.clock.advance(timedelta(minutes=self.rng.randint(5, 1440 // max(events, 1))))
            user_id = self.rng.choice(self.user_ids)
            kind = self.rng.choices(kinds, weights)[0]
            if kind in ("instant_buy", "instant_sell"):
                self.instant(user_id, kind.removeprefix("instant_"))
            else:
                getattr(self, kind)(user_id)
        self.attempt("p2p.timeouts", lambda: p2p.cancel_timed_out(self.platform, SYSTEM))
        if number % 14 == 13:
            self.sweep_fees()
        if number % 9 == 4:
            self.adjustment(self.rng.choice(self.user_ids))

    def final_state(self) -> None:
        """What the console should have to show on the last day: open and paid P2P trades,
        open disputes, and pending approvals of every kind a person can request."""
        sellers = [u for u in self.user_ids if self.platform.ledger.user_balances(u)]
        for ending in ("open", "open", "open", "paid", "paid", "dispute", "dispute"):
            self.p2p(self.rng.choice(sellers), ending)
        rich = max(self.user_ids, key=lambda u: self.available(u, "BTC"))
        big = self.share_of(rich, "BTC", 95, 95)
        if big and Decimal(big) > self.platform.config.approval_threshold["BTC"]:
            self.attempt("withdrawal.pending", lambda: withdrawal.request_withdrawal(
                self.platform, SYSTEM, user_id=rich, asset="BTC", amount=big, destination="bc1-demo-cold-storage",
                idempotency_key=self.key("withdrawal")))
        self.attempt("deposit.manual.pending", lambda: deposit.request_manual_deposit(
            self.platform, TREASURY_MAKER, user_id=self.rng.choice(self.user_ids), asset="GBP", amount="2500.00",
            reference="FPS 7731-2290", reason="bank transfer seen on the statement", idempotency_key=self.key("manual")))
        self.adjustment(self.rng.choice(self.user_ids), approve=False)
        fee_asset = "USDT"
        fee_minor = self.platform.ledger.balance(acct.fees(fee_asset)).minor // 2
        if fee_minor > 0:
            self.treasury("sweep", fee_asset, from_minor(fee_minor, fee_asset, self.platform.registry).text(), approve=False)
        self.treasury("topup", "ETH", "150", approve=False)
        self.treasury("withdraw", "GBP", "250000", approve=False)
        rejected = self.treasury("topup", "SOL", "999999", approve=False)
        if rejected:
            self.attempt("approval.reject", lambda: approvals.reject(self.platform, CHECKERS[0], rejected["_id"], "amount looks like a typo"))


def run_activity(platform: Platform, clock: ManualClock, user_ids: list[str], size: DemoSize, rng: random.Random) -> dict:
    """Every flow type over `size.days` days, with the ManualClock moving through each day."""
    activity = _Activity(platform, clock, user_ids, rng)
    for asset in DEMO_ASSETS:
        activity.treasury("topup", asset, FLOAT_TOP_UP[asset])
    for user_id in user_ids:  # everyone starts with one or two deposits
        for asset in rng.sample(DEMO_ASSETS, rng.randint(1, 2)):
            clock.advance(timedelta(minutes=rng.randint(1, 30)))
            activity.deposit(user_id, asset)
    events_per_day = max(4, size.users // 5)
    for number in range(size.days):
        clock.set(DEMO_END - timedelta(days=size.days - number))
        activity.day(number, events_per_day)
        if number in (size.days // 3, 2 * size.days // 3):
            activity.attempt("integrity.run", lambda: integrity.check_platform(platform, CHECKERS[1]))
    clock.set(DEMO_END - timedelta(hours=2))
    activity.final_state()
    legacy_note = build_demo_legacy(platform, activity)
    clock.set(DEMO_END)
    activity.attempt("integrity.run", lambda: integrity.check_platform(platform, CHECKERS[1]))
    return {"clock_end": clock.now().strftime("%Y-%m-%dT%H:%M:%S"), "legacy": legacy_note,
            "events": dict(sorted(activity.counts.items()))}


def build_demo_legacy(platform: Platform, activity: _Activity) -> str:
    """A legacy database mirroring the ledger with a little planted drift (core.legacy.fixture),
    and a pending rebuild request for it. Returns a note for the snapshot's meta."""
    try:
        from core.legacy.fixture import build_legacy_fixture
    except ImportError:
        return "unavailable: core.legacy.fixture is not installed"
    legacy = platform.store.sibling("legacy")
    manifest = build_legacy_fixture(legacy, ledger_platform=platform)
    platform.legacy = legacy
    people = legacy.collection("users").find({"user_id": {"$in": manifest.users}}, limit=len(manifest.users),
                                              projection={"_id": 0, "user_id": 1, "email": 1, "name": 1})
    platform.store.collection("users").insert_many([{**person, "status": "active", "country": "GB"} for person in people])
    platform.store.collection("user_accounts").insert_many([{"user_id": u, "referred_by": None, "referral_tier": "standard"} for u in manifest.users])
    activity.attempt("legacy.rebuild.pending", lambda: legacy_rebuild.request_rebuild(
        platform, TREASURY_MAKER, legacy, "demo: rewrite the drifted legacy balances from the ledger"))
    return "built"
