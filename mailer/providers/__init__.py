"""Providers: where messages go. Each reads a `models.Mailing` and returns an `Outcome`;
none imports the store, the renderer, the delivery engine or click. The engine declares
the Protocols they fill (delivery/engine.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailer.config import Settings


def make_provider(settings: Settings) -> Any:
    """The provider `settings.provider` names (a `delivery.engine.Provider`)."""
    if settings.provider == "smtp":
        from mailer.providers.smtp import SmtpProvider

        return SmtpProvider(settings)
    if settings.provider == "sendgrid":
        from mailer.providers.sendgrid.provider import SendGridProvider

        return SendGridProvider(settings)
    from mailer.providers.outbox import OutboxProvider

    return OutboxProvider(settings)
