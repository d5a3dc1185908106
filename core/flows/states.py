"""Where the flows keep their documents, and — for those that place holds — the states
after which a flow never moves its hold again. Shared by those flows and the stranded-hold sweep
(core.flows.holds), which must know them without importing the flows that import it."""

DEPOSITS = "deposits"
WITHDRAWALS = "withdrawals"
WITHDRAWAL_TERMINAL = ("settled", "rejected", "failed")
P2P_TRADES = "p2p_trades"
P2P_CLOSED = ("released", "cancelled", "resolved_buyer", "resolved_seller")
QUOTES = "quotes"
QUOTE_TERMINAL = ("executed", "expired", "failed")
