"""The SMTP loop as tests drive it: settings for a real SMTP server and bounce mailbox,
issues to send, and what was sent to whom."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from mailer.config import load_settings
from mailer.store import open_store
from tests.conftest import Cli, write
from tests.mailservers import Dovecot
from tests.servers import SmtpServer

BOUNCES = "bounces@news.example.com"


def env(smtp: SmtpServer, imap: Dovecot | None = None) -> dict[str, str]:
    out = {
        "MAILER_PROVIDER": "smtp",
        "MAILER_SMTP_HOST": "127.0.0.1",
        "MAILER_SMTP_PORT": str(smtp.port),
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_BOUNCE_ADDRESS": BOUNCES,
    }
    if imap is not None:
        out |= {
            "MAILER_BOUNCE_IMAP_URL": imap.url,
            "MAILER_BOUNCE_IMAP_PASSWORD": imap.password,
            "MAILER_BOUNCE_IMAP_CA_FILE": str(imap.certs.ca),
        }
    return out


def issue(run: Cli, n: int) -> Path:
    return write(
        run.project / "issues" / f"2026-12-0{n}-weekly.md", f"# Issue {n}\n\nNews number {n}.\n"
    )


def sent_to(smtp: SmtpServer, address: str) -> tuple[str, email.message.Message]:
    """(envelope sender, message) of the newest message sent to `address`."""
    for (sender, rcpts), raw in zip(
        reversed(smtp.handler.envelopes), reversed(smtp.handler.messages), strict=True
    ):
        if address in rcpts:
            return sender, email.message_from_bytes(raw, policy=email.policy.compat32)
    raise AssertionError(f"nothing sent to {address}")


def headers_of(msg: email.message.Message) -> str:
    return "".join(
        f"{k}: {v}\n"
        for k, v in msg.items()
        if k in ("From", "To", "Subject", "Date", "Message-ID")
    )


def statuses(project: Path) -> dict[str, str]:
    with open_store(load_settings(project)) as store:
        return {s.email: s.status for s in store.subscribers.iter()}
