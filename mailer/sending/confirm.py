"""The mails the web pages promise, one recipient each, through the same pipeline and
provider: the double opt-in confirmation and the link to a reader's preference page. Each
is in the reader's language."""

from __future__ import annotations

import dataclasses

from mailer.config import Settings
from mailer.content.i18n import translations
from mailer.content.render import Renderer
from mailer.errors import DeliveryError
from mailer.models import Issue
from mailer.sending.adhoc import send_adhoc
from mailer.store.subscribers import clean_name
from mailer.text import is_plain_name


def send_confirmation(
    settings: Settings, email: str, name: str, confirm_url: str, language: str = ""
) -> None:
    settings = _in(settings, language)
    _ = translations(settings.language or "en", settings.project).gettext
    newsletter = {"newsletter": settings.display_name}
    # Each string stands alone, outside any f-string: the extractor cannot see into one.
    title = _("Confirm your subscription")
    asked = _("Someone (we hope you) asked to get %(newsletter)s at this address.") % newsletter
    button = _("Yes, subscribe me")
    not_you = _("If it was not you, ignore this email: nothing will be sent.")
    _send(
        settings,
        email,
        name,
        subject=_("Confirm your subscription to %(newsletter)s") % newsletter,
        preheader=_("One click and you are in."),
        body=f"# {title}\n\n{asked}\n\n[{button}]({confirm_url})\n\n{not_you}\n",
        slug="confirmations",
        what="confirmation",
    )


def send_preferences_link(
    settings: Settings, email: str, name: str, url: str, language: str = ""
) -> None:
    settings = _in(settings, language)
    _ = translations(settings.language or "en", settings.project).gettext
    newsletter = {"newsletter": settings.display_name}
    title = _("Your preferences")
    asked = _("Someone (we hope you) asked for a link to your %(newsletter)s preferences.") % (
        newsletter
    )
    button = _("Manage my preferences")
    not_you = _("If it was not you, ignore this email: nothing changes.")
    _send(
        settings,
        email,
        name,
        subject=_("Your %(newsletter)s preferences") % newsletter,
        preheader=_("Topics, language, a pause, or unsubscribe."),
        body=f"# {title}\n\n{asked}\n\n[{button}]({url})\n\n{not_you}\n",
        slug="preferences",
        what="preferences link",
    )


def _in(settings: Settings, language: str) -> Settings:
    return dataclasses.replace(settings, language=language) if language else settings


def _send(
    settings: Settings,
    email: str,
    name: str,
    *,
    subject: str,
    preheader: str,
    body: str,
    slug: str,
    what: str,
) -> None:
    issue = Issue(
        slug=slug,
        subject=subject,
        preheader=preheader,
        date="",
        body=body,
        source=slug,
        archive=False,  # no "view in browser": it is one person's link
    )
    # Whoever filled in the form chose the name: a mail to someone who has not confirmed
    # carries it only if it reads as a name, so a stranger cannot write into it.
    shown = clean_name(name) if is_plain_name(clean_name(name)) else ""
    result = send_adhoc(settings, Renderer(settings).render(issue), [(email, shown)])
    if not result.sent:
        reason = next(iter(result.failed.values()), "unknown")
        raise DeliveryError(f"could not send the {what} email: {reason}")
