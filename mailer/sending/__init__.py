"""The send: plan and run an issue through the ledger (exactly once), the engine and the
Protocols it needs from a provider and the ledger, the rate limit, and the mails outside
a whole-list send (welcomes through the ledger; test copies, confirmations and their queue)."""
