"""SendGrid's v3 Mail Send API through the official `sendgrid` package.

`build_request` is a pure function (no I/O): one request of up to 1000 personalizations,
one recipient each, per-recipient List-Unsubscribe header and substitutions, custom_args
with ids only. `SendGridSession.send` is the transport with SendGrid's retry rules.
"""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.error
from collections.abc import Sequence
from http.client import HTTPException
from typing import Any

from mailer.config import Settings
from mailer.content.placeholders import TOKENS, both_values
from mailer.delivery.message import list_headers
from mailer.errors import DeliveryError
from mailer.models import Outcome, Recipient
from mailer.providers import Job, TransientError

MAX_PERSONALIZATIONS = 1000
RETRIES = 6
BACKOFF_CAP = 30.0
# The text part gets its own substitution keys: its values are not HTML-escaped.
TEXT_TOKENS = {f: t[:-2] + "_TEXT__" for f, t in TOKENS.items()}


def build_request(job: Job, group: Sequence[Recipient], settings: Settings) -> dict[str, Any]:
    """The JSON body for POST /v3/mail/send.

    Substitutions carry only the fields the templates use. A field whose value reads the
    same escaped and unescaped for everyone in the request shares one key between the
    HTML and the text part; otherwise the text part gets its own, unescaped key.
    """
    if len(group) > MAX_PERSONALIZATIONS:
        raise ValueError(f"at most {MAX_PERSONALIZATIONS} recipients per request")
    p = job.personalizer
    html_fields, text_fields = set(p.rendered.html.fields), set(p.rendered.text.fields)
    people = []
    for r in group:
        url = p.unsubscribe_url(r)
        people.append((r, url, *both_values(url, r.email, r.name)))
    split = {f for f in text_fields & html_fields if any(h[f] != t[f] for _, _, h, t in people)}
    # Which value goes under which key, worked out once per request, not per recipient.
    text_tokens = {f: TEXT_TOKENS[f] if f in split else TOKENS[f] for f in text_fields}
    keys = [(TOKENS[f], f, True) for f in html_fields]
    keys += [(text_tokens[f], f, False) for f in text_fields if f in split or f not in html_fields]
    issue = str(job.issue_id)
    personalizations = []
    for r, url, html_vals, text_vals in people:
        name = text_vals["name"]
        personalizations.append(
            {
                "to": [{"email": r.email, "name": name} if name else {"email": r.email}],
                "headers": list_headers(url),
                "substitutions": {
                    key: (html_vals if html else text_vals)[f] for key, f, html in keys
                },
                "custom_args": {"mailer_issue": issue, "mailer_subscriber": str(r.subscriber_id)},
            }
        )
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": {
            "email": settings.from_email,
            **({"name": settings.from_name} if settings.from_name else {}),
        },
        "subject": p.factory.subject,
        "content": [
            {"type": "text/plain", "value": p.rendered.text.fill({**TOKENS, **text_tokens})},
            {"type": "text/html", "value": p.rendered.html.fill(TOKENS)},
        ],
        "headers": p.factory.issue_headers,
        "custom_args": {"mailer_issue": str(job.issue_id)},
    }
    if settings.reply_to:
        body["reply_to"] = {"email": settings.reply_to}
    return body


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, settings: Settings) -> None:
        settings.require("sendgrid_api_key")
        self.settings = settings
        self.group_size = min(settings.batch_size, MAX_PERSONALIZATIONS)

    def session(self) -> SendGridSession:
        return SendGridSession(self.settings)


class SendGridSession:
    def __init__(self, settings: Settings) -> None:
        from sendgrid import SendGridAPIClient

        self.settings = settings
        self.client = SendGridAPIClient(
            api_key=settings.sendgrid_api_key, host=settings.sendgrid_api_host
        )

    def send(self, job: Job, group: Sequence[Recipient]) -> Outcome:
        body = build_request(job, group, self.settings)
        message_id = self.post(body)
        if message_id is None:
            return Outcome(
                ambiguous={
                    r.subscriber_id: "SendGrid did not answer; it may have accepted the request"
                    for r in group
                }
            )
        return Outcome(sent={r.subscriber_id: message_id for r in group})

    def post(self, body: dict[str, Any]) -> str | None:
        """X-Message-Id of an accepted request; None when it may or may not have been taken."""
        from python_http_client import exceptions

        last = ""
        for attempt in range(RETRIES + 1):
            try:
                response = self.client.client.mail.send.post(
                    request_body=body, timeout=self.settings.sendgrid_timeout
                )
                return str(response.headers.get("X-Message-Id", ""))
            except exceptions.HTTPError as e:
                status = int(e.status_code)
                if status == 429:
                    time.sleep(_reset_wait(e.headers))
                    continue
                if status >= 500:
                    last = f"SendGrid answered {status}"
                    time.sleep(_backoff(attempt))
                    continue
                raise DeliveryError(_explain(status, e.body)) from None
            except urllib.error.URLError as e:
                if _not_sent(e):
                    last = f"cannot connect to {self.settings.sendgrid_api_host} ({e.reason})"
                    time.sleep(_backoff(attempt))
                    continue
                return None
            except (TimeoutError, HTTPException, ConnectionError, OSError):
                return None  # the request went out; whether SendGrid took it is unknown
        raise TransientError(
            f"{last}; gave up after {RETRIES + 1} attempts, the rest stays pending"
        )

    def close(self) -> None:
        pass


def _not_sent(e: urllib.error.URLError) -> bool:
    """Refused or unresolvable: the request never left. Anything else may have reached SendGrid."""
    return isinstance(e.reason, ConnectionRefusedError | socket.gaierror)


def _reset_wait(headers: Any) -> float:
    try:
        reset = float(headers.get("X-RateLimit-Reset"))
    except (TypeError, ValueError):
        return 1.0
    return float(min(max(reset - time.time(), 0.05), 60.0))


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP, 0.25 * 2.0**attempt) * (0.5 + random.random() / 2)


def _explain(status: int, body: bytes | str) -> str:
    try:
        errors = json.loads(body).get("errors", [])
        detail = "; ".join(
            f"{e.get('field') or 'request'}: {e.get('message')}"
            for e in errors
            if isinstance(e, dict)
        )
    except (ValueError, AttributeError, TypeError):
        detail = (body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body))[:300]
    hint = {
        401: "check sendgrid_api_key (SENDGRID_API_KEY)",
        403: "the API key lacks the Mail Send permission or the sender is not verified",
        413: "the request is too large; lower batch_size",
    }.get(status, "nothing was sent; fix the request and run again")
    return f"SendGrid refused the request ({status}): {detail or 'no details'}; {hint}"
