"""Commands: web."""
