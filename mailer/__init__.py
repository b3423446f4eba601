"""mailer: Markdown newsletters compiled to email and sent exactly once to every subscriber."""

__version__ = "0.1.0"
