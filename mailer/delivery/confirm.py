"""The double opt-in email: a one-recipient message through the same pipeline and provider."""

from __future__ import annotations

from mailer.config import Settings
from mailer.content.render import Renderer
from mailer.delivery.compose import Personalizer
from mailer.errors import DeliveryError
from mailer.models import Issue, Recipient
from mailer.providers import Job, make_provider


def send_confirmation(
    settings: Settings, subscriber_id: int, email: str, name: str, confirm_url: str
) -> None:
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
    rendered = Renderer(settings).render(issue)
    job = Job(0, issue.slug, Personalizer(settings, rendered, 0), adhoc=True)
    session = make_provider(settings).session()
    try:
        outcome = session.send(job, [Recipient(subscriber_id, email, name)])
    finally:
        session.close()
    if not outcome.sent:
        reason = next(iter({**outcome.failed, **outcome.ambiguous}.values()), "unknown")
        raise DeliveryError(f"could not send the confirmation email: {reason}")
