"""The double opt-in email: a one-recipient message through the same pipeline and provider."""

from __future__ import annotations

from mailer.config import Settings
from mailer.content.render import Renderer
from mailer.delivery.adhoc import send_adhoc
from mailer.errors import DeliveryError
from mailer.models import Issue


def send_confirmation(settings: Settings, email: str, name: str, confirm_url: str) -> None:
    issue = Issue(
        slug="confirmations",
        subject=f"Confirm your subscription to {settings.display_name}",
        preheader="One click and you are in.",
        date="",
        body=(
            f"# Confirm your subscription\n\n"
            f"Someone (we hope you) asked to get {settings.display_name} at this address.\n\n"
            f"[Yes, subscribe me]({confirm_url})\n\n"
            "If it was not you, ignore this email: nothing will be sent.\n"
        ),
        source="confirmation",
    )
    result = send_adhoc(settings, Renderer(settings).render(issue), [(email, name)])
    if not result.sent:
        reason = next(iter(result.failed.values()), "unknown")
        raise DeliveryError(f"could not send the confirmation email: {reason}")
