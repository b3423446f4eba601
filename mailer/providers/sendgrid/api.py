"""The one client for SendGrid's v3 API: Mail Send and the suppression lists.

One kept-alive connection per worker (the `sendgrid` package's client opens one per
request: over TLS two or three more round trips each), SendGrid's retry rules (5xx and
refused connections with capped jittered backoff; 429s waited out on their own clock),
and its errors explained in one line. A Mail Send that may have reached SendGrid is never
retried: the caller records it as ambiguous. A GET may be repeated.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from typing import Any
from urllib.parse import urlencode

from mailer.config import Settings
from mailer.errors import DeliveryError, TransientError
from mailer.providers.sendgrid.http import Answer, KeptAlive, MaybeSent, NotSent

RETRIES = 6  # for 5xx answers and failed connections
RATE_LIMITED_FOR = 900.0  # seconds of 429s in a row before giving up; they are waited out
BACKOFF_CAP = 30.0


class Client:
    def __init__(self, settings: Settings) -> None:
        settings.require("sendgrid_api_key")
        self.host = settings.sendgrid_api_host
        self.http = KeptAlive(settings.sendgrid_api_host, settings.sendgrid_timeout)
        self.headers = {
            "Authorization": f"Bearer {settings.sendgrid_api_key}",
            "Content-Type": "application/json",
            "User-Agent": "mailer",
        }

    def send_mail(self, body: bytes) -> str | None:
        """X-Message-Id of an accepted Mail Send; None when it may or may not have been taken."""
        answer = self._call("POST", "/v3/mail/send", body)
        return None if answer is None else str(answer.headers.get("X-Message-Id", ""))

    def get(self, path: str, **params: object) -> Any:
        """A GET's JSON answer (repeated when the connection failed: it changes nothing)."""
        query = f"?{urlencode(params)}" if params else ""
        answer = self._call("GET", path + query, None)
        assert answer is not None  # a GET is retried, never left "maybe"
        try:
            return json.loads(answer.body)
        except ValueError:
            raise DeliveryError(f"SendGrid's answer to GET {path} was not JSON") from None

    def _call(self, method: str, path: str, body: bytes | None) -> Answer | None:
        last = ""
        attempt = 0
        limited_since: float | None = None
        while attempt <= RETRIES:
            try:
                answer = self.http.request(method, path, body, self.headers)
            except NotSent as e:
                attempt += 1
                last = f"cannot connect to {self.host} ({e})"
                time.sleep(_backoff(attempt))
                continue
            except MaybeSent as e:
                if method == "POST":
                    return None  # the request went out; whether SendGrid took it is unknown
                attempt += 1
                last = f"{self.host} did not answer ({e})"
                time.sleep(_backoff(attempt))
                continue
            except ssl.SSLCertVerificationError as e:
                raise DeliveryError(
                    f"sendgrid_api_host {self.host}: its TLS certificate is not trusted "
                    f"({e.verify_message})"
                ) from None
            status = answer.status
            if 200 <= status < 300:
                return answer
            if status == 429:
                # Rate limited: the request was not taken. Waited out, on its own clock,
                # without using up the retries that 5xx answers get.
                limited_since = limited_since or time.monotonic()
                if time.monotonic() - limited_since > RATE_LIMITED_FOR:
                    raise TransientError(
                        f"SendGrid kept answering 429 (rate limited) for "
                        f"{RATE_LIMITED_FOR:.0f}s; the rest stays pending, run again later"
                    )
                time.sleep(_reset_wait(answer.headers))
                continue
            limited_since = None
            attempt += 1
            if status >= 500:
                last = f"SendGrid answered {status}"
                time.sleep(_backoff(attempt))
                continue
            raise DeliveryError(explain(status, answer.body))
        raise TransientError(f"{last}; gave up after {attempt} attempts, the rest stays pending")

    def close(self) -> None:
        self.http.close()


def _reset_wait(headers: Any) -> float:
    try:
        reset = float(headers.get("X-RateLimit-Reset"))
    except (TypeError, ValueError):
        return 1.0
    return float(min(max(reset - time.time(), 0.05), 60.0))


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP, 0.25 * 2.0**attempt) * (0.5 + random.random() / 2)


def explain(status: int, body: bytes | str) -> str:
    """SendGrid's refusal in one line: its error fields and what to do."""
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
