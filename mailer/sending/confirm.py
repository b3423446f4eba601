"""The double opt-in email: a one-recipient message through the same pipeline and provider."""

from __future__ import annotations

from mailer.config import Settings
from mailer.content.i18n import translations
from mailer.content.render import Renderer
from mailer.errors import DeliveryError
from mailer.models import Issue
from mailer.sending.adhoc import send_adhoc


def send_confirmation(settings: Settings, email: str, name: str, confirm_url: str) -> None:
    renderer = Renderer(settings)
    _ = translations(settings.language or "en", settings.project).gettext
    newsletter = {"newsletter": settings.display_name}
    # Each string stands alone, outside any f-string: the extractor cannot see into one.
    title = _("Confirm your subscription")
    asked = _("Someone (we hope you) asked to get %(newsletter)s at this address.") % newsletter
    button = _("Yes, subscribe me")
    not_you = _("If it was not you, ignore this email: nothing will be sent.")
    issue = Issue(
        slug="confirmations",
        subject=_("Confirm your subscription to %(newsletter)s") % newsletter,
        preheader=_("One click and you are in."),
        date="",
        body=f"# {title}\n\n{asked}\n\n[{button}]({confirm_url})\n\n{not_you}\n",
        source="confirmation",
        archive=False,  # no "view in browser": it is one person's link
    )
    result = send_adhoc(settings, renderer.render(issue), [(email, name)])
    if not result.sent:
        reason = next(iter(result.failed.values()), "unknown")
        raise DeliveryError(f"could not send the confirmation email: {reason}")
