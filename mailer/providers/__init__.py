"""Providers: where messages go. The delivery engine declares what it needs here; each
provider module fills it and knows nothing of the store, the renderer or click."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mailer.errors import DeliveryError
from mailer.models import Outcome, Recipient

if TYPE_CHECKING:
    from mailer.config import Settings
    from mailer.delivery.compose import Personalizer


class TransientError(DeliveryError):
    """The provider certainly did not accept the request, and may later: stop, keep pending."""


@dataclass(frozen=True)
class Job:
    """One issue's send, as a provider needs it."""

    issue_id: int
    slug: str
    personalizer: Personalizer
    adhoc: bool = False  # outside the ledger: test copies, confirmations


class Session(Protocol):
    def send(self, job: Job, group: Sequence[Recipient]) -> Outcome: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str
    group_size: int  # recipients given to one Session.send call

    def session(self) -> Session: ...


def make_provider(settings: Settings) -> Provider:
    if settings.provider == "smtp":
        from mailer.providers.smtp import SmtpProvider

        return SmtpProvider(settings)
    if settings.provider == "sendgrid":
        from mailer.providers.sendgrid import SendGridProvider

        return SendGridProvider(settings)
    from mailer.providers.outbox import OutboxProvider

    return OutboxProvider(settings)
