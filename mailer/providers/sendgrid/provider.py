"""SendGrid as a provider: a group of recipients is one Mail Send request."""

from __future__ import annotations

from collections.abc import Sequence

from mailer.config import Settings
from mailer.errors import LocalError
from mailer.models import Mailing, Outcome, Recipient
from mailer.providers.sendgrid.api import Client
from mailer.providers.sendgrid.body import MAX_PERSONALIZATIONS, MailSend


class SendGridProvider:
    name = "sendgrid"
    batched = True  # one request per group: SendGrid's limits count requests

    def __init__(self, settings: Settings) -> None:
        settings.require("sendgrid_api_key")
        self.settings = settings
        self.group_size = min(settings.batch_size, MAX_PERSONALIZATIONS)

    def session(self) -> SendGridSession:
        return SendGridSession(self.settings)


class SendGridSession:
    def __init__(self, settings: Settings) -> None:
        self.client = Client(settings)
        self.requests: MailSend | None = None  # for the mailing being sent

    def send(self, mailing: Mailing, group: Sequence[Recipient]) -> Outcome:
        if self.requests is None or self.requests.mailing is not mailing:
            self.requests = MailSend(mailing)  # its message level is encoded once
        try:
            body = self.requests.body(group)
        except Exception as e:  # built here, before any byte left: nothing was sent
            raise LocalError(f"cannot build the SendGrid request: {e}") from None
        message_id = self.client.send_mail(body)
        if message_id is None:
            return Outcome(
                ambiguous={
                    r.key: "SendGrid did not answer; it may have accepted the request"
                    for r in group
                }
            )
        return Outcome(sent={r.key: message_id for r in group})

    def close(self) -> None:
        self.client.close()
