"""Issue → message: the mailing providers read (one issue, flat), its RFC 5322 messages,
DKIM signatures, and what one recipient gets of an issue file (build, preview)."""
