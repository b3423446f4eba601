"""SMTP: kept connections (one per worker), STARTTLS / implicit TLS / none, retries on 4xx.

Each message is sent as MAIL, RCPT, DATA by hand rather than through sendmail(), because
the difference matters: a failure before DATA means the server has nothing and we may try
again; a failure during DATA means it may have the message, so it is ambiguous.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import time
from collections.abc import Sequence

from mailer.config import Settings
from mailer.errors import DeliveryError, LocalError, TransientError
from mailer.models import Mailing, Outcome, Recipient

RETRIES = 3
BACKOFF = 0.5  # seconds, doubled per attempt
_ENHANCED = re.compile(rb"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


class _Retry(Exception):
    """A 4xx reply or a dropped connection before DATA: safe to try again."""


class SmtpProvider:
    name = "smtp"
    batched = False

    def __init__(self, settings: Settings) -> None:
        settings.require("smtp_host")
        self.settings = settings
        # Small groups: a crash leaves at most this many per connection ambiguous.
        self.group_size = 10

    def session(self) -> SmtpSession:
        return SmtpSession(self.settings)


class SmtpSession:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.s
        where = f"{s.smtp_host}:{s.smtp_port}"
        conn: smtplib.SMTP | None = None
        try:
            if s.smtp_security == "ssl":
                conn = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=self._tls()
                )
            else:
                conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
                if s.smtp_security == "starttls":
                    conn.starttls(context=self._tls())
            conn.ehlo_or_helo_if_needed()
            if s.smtp_username:
                conn.login(s.smtp_username, s.smtp_password)
            return conn
        except smtplib.SMTPAuthenticationError as e:
            _close(conn)
            raise DeliveryError(
                f"SMTP server {where} refused the login for {s.smtp_username!r} ({e.smtp_code}); "
                "check smtp_username and smtp_password"
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close(conn)
            raise DeliveryError(
                f"SMTP server {where} does not offer STARTTLS; set smtp_security to 'ssl' or 'none'"
            ) from None
        except ssl.SSLCertVerificationError as e:
            _close(conn)
            raise DeliveryError(
                f"SMTP server {where}: its TLS certificate is not trusted ({e.verify_message}); "
                "check smtp_host, or trust its CA with smtp_ca_file"
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            _close(conn)
            raise TransientError(f"cannot connect to SMTP server {where}: {e}") from None

    def _tls(self) -> ssl.SSLContext:
        """Verified TLS: the system's CAs, plus smtp_ca_file if set (a private CA)."""
        context = ssl.create_default_context()
        if self.s.smtp_ca_file:
            try:
                context.load_verify_locations(cafile=str(self.s.path(self.s.smtp_ca_file)))
            except (OSError, ssl.SSLError) as e:
                raise DeliveryError(
                    f"smtp_ca_file {self.s.smtp_ca_file}: cannot load it ({e}); "
                    "it must be a PEM file of CA certificates"
                ) from None
        return context

    def send(self, mailing: Mailing, group: Sequence[Recipient]) -> Outcome:
        outcome = Outcome()
        for r in group:
            try:
                message = mailing.message(r)
            except Exception as e:  # built here, before any byte left: nothing was sent
                raise LocalError(f"cannot build the message for {r.email}: {e}") from None
            mid = mailing.message_id(r)
            sender = mailing.envelope_sender(r)
            for attempt in range(RETRIES + 1):
                try:
                    self._one(sender, r, message, outcome, mid)
                    break
                except _Retry as e:
                    if attempt == RETRIES:
                        outcome.failed[r.key] = f"temporary failure, gave up: {e}"
                    else:
                        time.sleep(BACKOFF * 2**attempt)
        return outcome

    def _one(self, sender: str, r: Recipient, message: bytes, outcome: Outcome, mid: str) -> None:
        sid = r.key
        try:
            if self.conn is None:
                self.conn = self._connect()
            conn = self.conn
            code, reply = conn.mail(sender)
            if code != 250:
                self._refused(code, reply, sid, outcome, "MAIL FROM")
                return
            code, reply = conn.rcpt(r.email)
            if code not in (250, 251):
                self._refused(code, reply, sid, outcome, "RCPT TO")
                return
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            self._drop()
            raise _Retry(f"connection lost before DATA ({e})") from None
        try:
            code, reply = conn.data(message)
        except smtplib.SMTPDataError as e:
            reply = e.smtp_error if isinstance(e.smtp_error, bytes) else str(e.smtp_error).encode()
            self._refused(e.smtp_code, reply, sid, outcome, "DATA")
            return
        except (smtplib.SMTPException, OSError) as e:
            # The server may have the whole message: never resend it silently.
            self._drop()
            outcome.ambiguous[sid] = f"connection lost during DATA ({e})"
            return
        if code == 250:
            outcome.sent[sid] = mid
        else:
            self._refused(code, reply, sid, outcome, "end of DATA")

    def _refused(self, code: int, reply: bytes, sid: int, outcome: Outcome, stage: str) -> None:
        text = reply.decode("utf-8", "replace")
        try:
            if self.conn is not None:
                self.conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()
        if 400 <= code < 500:
            raise _Retry(f"{code} {text}")
        outcome.failed[sid] = f"{stage}: {code} {text}"[:500]
        m = _ENHANCED.search(reply)
        if code >= 500 and m and m.group(1) == b"5" and m.group(2) == b"1":
            outcome.bounced.add(sid)  # 5.1.x: the address does not exist

    def _drop(self) -> None:
        _close(self.conn)
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.conn.quit()
            self._drop()


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            conn.close()
