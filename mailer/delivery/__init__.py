"""Delivery: composing each recipient's message and sending an issue through the ledger."""
