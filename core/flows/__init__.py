"""Payment flows (SPEC §6): each a service function taking the acting principal and an
idempotency key, booking its movements only through the ledger. Importing the package
registers the approval executors of the kinds the flows use."""

from core.flows import adjustment, deposit, instant, p2p, quotes, recovery, referral, swap, treasury, withdrawal  # noqa: F401
