"""The ledger library: exact money, a double-entry journal, flows, integrity and audit.

Nothing in this package imports streamlit; only `core.ledger.store` talks pymongo.
"""
