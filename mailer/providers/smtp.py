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
        try:
            self._send(mailing, group, outcome)
        except DeliveryError as e:
            e.partial = outcome  # what went out before this failure is recorded, not reverted
            raise
        return outcome

    def _send(self, mailing: Mailing, group: Sequence[Recipient], outcome: Outcome) -> None:
        if self.conn is None:
            self.conn = self._connect()
        if self.conn.has_extn("pipelining"):
            group = self._pipelined(mailing, group, outcome)  # what is left to retry
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

    def _pipelined(
        self, mailing: Mailing, group: Sequence[Recipient], outcome: Outcome
    ) -> list[Recipient]:
        """RFC 2920: one round trip a message. The message's body and final dot go out in
        one write with the next message's MAIL, RCPT and DATA; then the replies are read in
        order. What each reply means is decided per message, exactly as without pipelining:
        a connection lost after a body's final dot leaves that one message ambiguous; a
        message whose body never left (its MAIL, RCPT or DATA refused with 4xx, or the
        connection lost before) is returned to be tried again, one at a time."""
        assert self.conn is not None and self.conn.sock is not None
        conn, sock = self.conn, self.conn.sock
        # An address that is not ASCII needs SMTPUTF8: the one-at-a-time path deals with it.
        envelopes = {r.key: e for r in group if (e := _envelope(mailing, r)) is not None}
        todo = [r for r in group if r.key in envelopes]
        retry: list[Recipient] = [r for r in group if r.key not in envelopes]
        if not todo:
            return retry
        try:
            body = _payload(mailing, todo[0])
            sock.sendall(envelopes[todo[0].key])
        except OSError:
            self._drop()
            return retry + todo
        for i, r in enumerate(todo):
            try:
                replies = [conn.getreply() for _ in range(3)]  # MAIL, RCPT, DATA
            except (smtplib.SMTPServerDisconnected, OSError):
                self._drop()  # this message's body never left: safe to try again
                return retry + todo[i:]
            refused = _first_refusal(replies)
            if refused is not None:
                if replies[2][0] == 354:  # a server that says go ahead anyway: end it empty-handed
                    self._drop()
                    return retry + todo[i:]
                code, reply, stage = refused
                try:
                    sock.sendall(b"RSET\r\n")
                    conn.getreply()
                    if i + 1 < len(todo):
                        body = _payload(mailing, todo[i + 1])
                        sock.sendall(envelopes[todo[i + 1].key])
                except (smtplib.SMTPServerDisconnected, OSError):
                    self._drop()
                    self._refusal(code, reply, r, outcome, stage, retry)
                    return retry + todo[i + 1 :]
                self._refusal(code, reply, r, outcome, stage, retry)
                continue
            # 354: this body, its final dot and the next envelope, in one write. The next
            # message is built first: if it cannot be, this one is still finished properly.
            nxt, next_body, problem = (todo[i + 1] if i + 1 < len(todo) else None), b"", None
            if nxt is not None:
                try:
                    next_body = _payload(mailing, nxt)
                except LocalError as e:
                    nxt, problem = None, e
            try:
                sock.sendall(body + (envelopes[nxt.key] if nxt is not None else b""))
                code, reply = conn.getreply()
            except (smtplib.SMTPServerDisconnected, OSError) as e:
                # The server may have the whole message: never resend it silently.
                self._drop()
                outcome.ambiguous[r.key] = f"connection lost after the message was sent ({e})"
                return retry + todo[i + 1 :]
            if code == 250:
                outcome.sent[r.key] = mailing.message_id(r)
            else:
                self._refusal(code, reply, r, outcome, "end of DATA", retry)
            if problem is not None:
                raise problem
            body = next_body
        return retry

    def _refusal(
        self,
        code: int,
        reply: bytes,
        r: Recipient,
        outcome: Outcome,
        stage: str,
        retry: list[Recipient],
    ) -> None:
        """A refused message in a pipelined group: 4xx is tried again (the one-at-a-time
        path, with its backoff), 5xx failed (5.1.x: the address is dead)."""
        if 400 <= code < 500:
            retry.append(r)
            return
        _failed(code, reply, r.key, outcome, stage)

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
        _failed(code, reply, sid, outcome, stage)

    def _drop(self) -> None:
        _close(self.conn)
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.conn.quit()
            self._drop()


def _failed(code: int, reply: bytes, sid: int, outcome: Outcome, stage: str) -> None:
    text = reply.decode("utf-8", "replace")
    outcome.failed[sid] = f"{stage}: {code} {text}"[:500]
    m = _ENHANCED.search(reply)
    if code >= 500 and m and m.group(1) == b"5" and m.group(2) == b"1":
        outcome.bounced.add(sid)  # 5.1.x: the address does not exist


def _first_refusal(replies: list[tuple[int, bytes]]) -> tuple[int, bytes, str] | None:
    """The reply that refused a pipelined MAIL, RCPT or DATA, with its stage; or None."""
    (mail, mail_text), (rcpt, rcpt_text), (data, data_text) = replies
    if mail != 250:
        return mail, mail_text, "MAIL FROM"
    if rcpt not in (250, 251):
        return rcpt, rcpt_text, "RCPT TO"
    if data != 354:
        return data, data_text, "DATA"
    return None


def _envelope(mailing: Mailing, r: Recipient) -> bytes | None:
    """MAIL, RCPT and DATA for one message (one recipient each); None when an address is
    not ASCII."""
    sender = mailing.envelope_sender(r)
    if not (sender.isascii() and r.email.isascii()):
        return None
    return f"MAIL FROM:{_angle(sender)}\r\nRCPT TO:{_angle(r.email)}\r\nDATA\r\n".encode("ascii")


# Characters that make an address more than a bare addr-spec (a name, a comment, a route).
_NOT_BARE = frozenset('<>()[]\\",;: \t\r\n')


def _angle(addr: str) -> str:
    """<addr> for MAIL FROM and RCPT TO. Validated addresses are bare addr-specs, for which
    smtplib.quoteaddr's full parse (a fifth of building an envelope) gives the same."""
    if addr and _NOT_BARE.isdisjoint(addr):
        return f"<{addr}>"
    return smtplib.quoteaddr(addr)


def _payload(mailing: Mailing, r: Recipient) -> bytes:
    """The message as DATA carries it: leading dots doubled, the final dot. Its lines end
    in CRLF and nothing else (Mailing.message's contract, checked where it is built)."""
    try:
        data = mailing.message(r)
    except Exception as e:  # built here, before any byte of it left: nothing was sent
        raise LocalError(f"cannot build the message for {r.email}: {e}") from None
    # A line starting with "." follows a CRLF (or starts the data); bytes.replace is one
    # C pass where a multiline regex would be many times slower.
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            conn.close()
