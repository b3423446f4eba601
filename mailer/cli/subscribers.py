"""Commands: subscribers."""
