"""A model of the OLD platform's write path, used only as the benchmark's baseline.

It reproduces what the legacy exchange did for each money movement (SPEC §1,
LEGACY_PLATFORM.md), so `python -m core bench` can show the store round trips of each
flow side by side with ours:

- one logical balance per (user, currency) kept in FOUR collections — `wallets`,
  `crypto_balances`, `trader_balances` (owner field `trader_id`), `internal_balances` —
  each written with a read-then-`$set` of a float (no `$inc`, no guard, no journal);
  on a standalone server the "atomic" service fell back to sequential updates, which is
  what is modelled here (one read of `wallets`, the source of truth, then one `$set` per
  copy: `BALANCE_WRITE_OPS` = 5 round trips per balance change);
- fees of swaps and express (instant) buys/sells added BOTH to the liquidity pool
  (`admin_liquidity_wallets`) and to the fee wallet (`admin_wallet` in the four
  collections) — the double count — and logged in `fee_transactions` and `admin_revenue`;
- withdrawals in `withdrawal_requests`, deposits in `deposits`, instant quotes in
  `admin_liquidity_quotes`, P2P trades in `p2p_trades`, referral data in `user_accounts`,
  admin adjustments straight onto the balance with an `admin_audit_logs` line.

It models the old code's *best case* (every step runs, nothing crashes), so its counts
are a lower bound of what the old platform cost. Floats are deliberate here: they are the
defect being modelled. Nothing in `core/` imports this module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from core.ledger.store import Store

BALANCE_COLLECTIONS = ("wallets", "crypto_balances", "trader_balances", "internal_balances")
OWNER_FIELD = {"wallets": "user_id", "crypto_balances": "user_id", "trader_balances": "trader_id",
               "internal_balances": "user_id"}
BALANCE_WRITE_OPS = 1 + len(BALANCE_COLLECTIONS)  # read wallets, then $set each copy
FEE_WALLET_OWNER = "admin_wallet"
FEE_COUNTER_OWNER = "PLATFORM_FEES"

# The old platform's fee settings (LEGACY_PLATFORM.md), as the floats it used.
SWAP_FEE = 0.015
INSTANT_FEE = 0.01
INSTANT_BUY_SPREAD = 0.03
INSTANT_SELL_SPREAD = 0.025
WITHDRAWAL_FEE = 0.01
P2P_MAKER_FEE = 0.01
REFERRAL_RATE = {"standard": 0.20, "golden": 0.50}


@dataclass
class LegacyPlatform:
    """The old write path over one store (its operations are counted by `store.log`)."""

    store: Store
    now: datetime

    # -- the shared building blocks ------------------------------------------------------------------
    def _read_wallet(self, owner: str, currency: str) -> dict:
        document = self.store.collection("wallets").find_one({"user_id": owner, "currency": currency})
        return document or {"available_balance": 0.0, "locked_balance": 0.0}

    def _write_balance(self, owner: str, currency: str, available: float, locked: float) -> None:
        """The sequential fallback of the old "atomic" service: `$set` every copy, no guard."""
        for name in BALANCE_COLLECTIONS:
            fields = {"available_balance": available, "locked_balance": locked, "last_updated": self.now}
            fields["total_balance" if name in ("wallets", "trader_balances") else "balance"] = available + locked
            self.store.collection(name).update_one({OWNER_FIELD[name]: owner, "currency": currency}, {"$set": fields},
                                                   upsert=True)

    def change_balance(self, owner: str, currency: str, available_delta: float = 0.0,
                       locked_delta: float = 0.0) -> float:
        """Read-then-`$set` one logical balance (a race loses updates; floats drift). Returns the new available."""
        wallet = self._read_wallet(owner, currency)
        available = float(wallet.get("available_balance") or 0.0) + available_delta
        locked = float(wallet.get("locked_balance") or 0.0) + locked_delta
        self._write_balance(owner, currency, available, locked)
        return available

    def _pool_add(self, currency: str, delta: float) -> None:
        """The liquidity pool: read, then `$set` (read-then-set again)."""
        pools = self.store.collection("admin_liquidity_wallets")
        pool = pools.find_one({"currency": currency}) or {"balance": 0.0}
        pools.update_one({"currency": currency}, {"$set": {"balance": float(pool.get("balance") or 0.0) + delta,
                                                           "available": float(pool.get("balance") or 0.0) + delta,
                                                           "updated_at": self.now}}, upsert=True)

    def _book_fee(self, user_id: str, kind: str, currency: str, amount: float, fee: float, reference: str) -> None:
        """Fee to the fee wallet plus the two fee logs."""
        self.change_balance(FEE_WALLET_OWNER, currency, available_delta=fee)
        self.store.collection("fee_transactions").insert_one({
            "user_id": user_id, "transaction_type": kind, "fee_type": f"{kind}_fee", "amount": amount,
            "fee_amount": fee,
            "currency": currency, "reference_id": reference, "timestamp": self.now})
        self.store.collection("admin_revenue").insert_one({
            "revenue_id": uuid.uuid4().hex, "source": kind, "revenue_type": "fee", "currency": currency, "amount": fee,
            "net_profit": fee, "user_id": user_id, "related_transaction_id": reference, "timestamp": self.now})

    # -- the flows --------------------------------------------------------------------------------------------
    def deposit(self, user_id: str, currency: str, amount: float, payment_id: str) -> None:
        deposits = self.store.collection("deposits")
        if (deposits.find_one({"payment_id": payment_id}) or {}).get("credited"):
            return
        self.change_balance(user_id, currency, available_delta=amount)
        deposits.update_one({"payment_id": payment_id},
                            {"$set": {"user_id": user_id, "pay_currency": currency, "pay_amount": amount,
                                      "status": "finished", "credited": True}}, upsert=True)

    def withdrawal_request(self, user_id: str, currency: str, amount: float) -> str:
        request_id = uuid.uuid4().hex
        self.change_balance(user_id, currency, available_delta=-amount, locked_delta=amount)
        self.store.collection("withdrawal_requests").insert_one({
            "_id": request_id, "user_id": user_id, "currency": currency, "amount": amount, "status": "pending",
            "created_at": self.now})
        return request_id

    def withdrawal_approve(self, request_id: str) -> None:
        requests = self.store.collection("withdrawal_requests")
        request = requests.find_one({"_id": request_id})
        requests.update_one({"_id": request_id}, {"$set": {"status": "approved"}})
        fee = request["amount"] * WITHDRAWAL_FEE
        self.change_balance(request["user_id"], request["currency"], locked_delta=-request["amount"])
        self._book_fee(request["user_id"], "withdrawal", request["currency"], request["amount"], fee, request_id)
        requests.update_one({"_id": request_id}, {"$set": {"status": "completed"}})

    def swap(self, user_id: str, from_currency: str, to_currency: str, amount: float, price: float) -> None:
        """The fee is added to the pool (inside the whole `amount`) AND to the fee wallet."""
        fee = amount * SWAP_FEE
        received = (amount - fee) * price
        reference = uuid.uuid4().hex
        self.change_balance(user_id, from_currency, available_delta=-amount)
        self.change_balance(user_id, to_currency, available_delta=received)
        self._pool_add(from_currency, amount)  # net + fee: the fee is counted here ...
        self._pool_add(to_currency, -received)
        self._book_fee(user_id, "swap", from_currency, amount, fee, reference)  # ... and again here
        self.store.collection("swap_history").insert_one({"_id": reference, "user_id": user_id, "amount": amount,
                                                          "timestamp": self.now})

    def instant_quote(self, user_id: str, kind: str, currency: str, amount: float, price: float) -> str:
        quote_id = uuid.uuid4().hex
        spread = INSTANT_BUY_SPREAD if kind == "buy" else INSTANT_SELL_SPREAD
        self.store.collection("admin_liquidity_quotes").insert_one({
            "_id": quote_id, "user_id": user_id, "kind": kind, "currency": currency, "amount": amount,
            "locked_price": price * ((1 - spread) if kind == "sell" else (1 + spread)), "status": "pending",
            "created_at": self.now})
        return quote_id

    def instant_execute(self, quote_id: str, fiat: str) -> None:
        quotes = self.store.collection("admin_liquidity_quotes")
        quote = quotes.find_one({"_id": quote_id})
        user_id, crypto, amount, price = quote["user_id"], quote["currency"], quote["amount"], quote["locked_price"]
        if quote["kind"] == "buy":  # amount = fiat spent
            fee = amount * INSTANT_FEE
            pay_currency, pay, get_currency, get = fiat, amount, crypto, (amount - fee) / price
        else:  # amount = crypto sold; fee taken from the fiat proceeds
            fee = amount * price * INSTANT_FEE
            pay_currency, pay, get_currency, get = crypto, amount, fiat, amount * price - fee
        self.change_balance(user_id, pay_currency, available_delta=-pay)
        self.change_balance(user_id, get_currency, available_delta=get)
        self._pool_add(pay_currency, pay)
        self._pool_add(get_currency, -get)  # the fee stays in the pool ...
        self._book_fee(user_id, f"instant_{quote['kind']}", fiat, amount, fee, quote_id)  # ... and is booked again
        quotes.update_one({"_id": quote_id}, {"$set": {"status": "executed"}})

    def p2p_create(self, seller: str, buyer: str, currency: str, amount: float) -> str:
        trade_id = uuid.uuid4().hex
        self.change_balance(seller, currency, available_delta=-amount, locked_delta=amount)
        self.store.collection("p2p_trades").insert_one({
            "_id": trade_id, "seller_id": seller, "buyer_id": buyer, "currency": currency, "amount": amount,
            "status": "pending_payment", "created_at": self.now})
        return trade_id

    def p2p_mark_paid(self, trade_id: str) -> None:
        trades = self.store.collection("p2p_trades")
        if trades.find_one({"_id": trade_id}) is not None:
            trades.update_one({"_id": trade_id}, {"$set": {"status": "paid", "paid_at": self.now}})

    def p2p_release(self, trade_id: str) -> None:
        trades = self.store.collection("p2p_trades")
        trade = trades.find_one({"_id": trade_id})
        fee = trade["amount"] * P2P_MAKER_FEE
        self.change_balance(trade["seller_id"], trade["currency"], locked_delta=-trade["amount"])
        self.change_balance(trade["buyer_id"], trade["currency"], available_delta=trade["amount"] - fee)
        self._book_fee(trade["seller_id"], "p2p", trade["currency"], trade["amount"], fee, trade_id)
        trades.update_one({"_id": trade_id}, {"$set": {"status": "completed"}})

    def referral_commission(self, payer: str, currency: str, fee: float, reference: str) -> None:
        """Commission credited to the referrer; the PLATFORM_FEES counter read-then-`$set`."""
        account = self.store.collection("user_accounts").find_one({"user_id": payer}) or {}
        referrer = account.get("referred_by")
        if not referrer or referrer == "None":
            return
        commission = fee * REFERRAL_RATE.get(account.get("referral_tier") or "standard", 0.20)
        self.change_balance(referrer, currency, available_delta=commission)
        counters = self.store.collection("internal_balances")
        counter = counters.find_one({"user_id": FEE_COUNTER_OWNER, "currency": currency}) or {}
        counters.update_one({"user_id": FEE_COUNTER_OWNER, "currency": currency},
                            {"$set": {"referral_commissions_paid":
                                      float(counter.get("referral_commissions_paid") or 0.0) + commission}},
                            upsert=True)
        self.store.collection("fee_transactions").insert_one({
            "user_id": payer, "transaction_type": "referral", "referrer_commission": commission,
            "referrer_id": referrer,
            "currency": currency, "reference_id": reference, "timestamp": self.now})

    def adjustment(self, admin: str, user_id: str, currency: str, amount: float, reason: str) -> None:
        """Straight onto the balance: no approval, one log line."""
        self.change_balance(user_id, currency, available_delta=amount)
        self.store.collection("admin_audit_logs").insert_one({
            "admin": admin, "action": "balance_adjustment", "user_id": user_id, "currency": currency, "amount": amount,
            "reason": reason, "timestamp": self.now})
