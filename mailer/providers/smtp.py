"""SMTP: kept connections (one per worker), STARTTLS / implicit TLS / none, retries on 4xx.

Each message is sent as MAIL, RCPT, DATA and its body by hand rather than through
sendmail(), because where a failure happens decides what it means: before the body left,
the server has nothing and the message is tried again; after its final dot, it may have
it, so it is ambiguous. One path for every server: pipelined (RFC 2920, one round trip a
message) where the server offers it, one command at a time where not; replies are read
by smtplib's own parser, and one rule (`_judge`) says what each means.
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


class _Lost(Exception):
    """The connection went while a command or a body was on its way."""


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
        self.last_refusal: dict[int, str] = {}  # why a message is being tried again

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
        """Each message of the group once, a message the server refused for now (4xx) or
        never got the body of tried again with backoff, up to RETRIES times."""
        outcome = Outcome()
        todo = list(group)
        try:
            for attempt in range(RETRIES + 1):
                if attempt:
                    time.sleep(BACKOFF * 2 ** (attempt - 1))
                todo = self._pass(mailing, todo, outcome)
                if not todo:
                    return outcome
        except DeliveryError as e:
            e.partial = outcome  # what went out before this failure is recorded, not reverted
            raise
        for r in todo:
            why = self.last_refusal.get(r.key, "no answer")
            outcome.failed[r.key] = f"temporary failure, gave up: {why}"
        return outcome

    def _pass(self, mailing: Mailing, group: list[Recipient], outcome: Outcome) -> list[Recipient]:
        """One go at each message, on one connection, in the one way for every server:
        MAIL, RCPT, DATA, then the body and its final dot. A server that offers PIPELINING
        (RFC 2920) gets the envelope's three commands in one write, and each body in the same
        write as the next message's envelope: one round trip a message. One that does not
        gets one command at a time. What each reply means is decided the same either way
        (`_judge`): a message whose body never left is returned to try again; a connection
        lost after its final dot leaves it ambiguous, never resent silently."""
        conn = self._connection()
        pipelined = conn.has_extn("pipelining")
        again: list[Recipient] = []
        body = _payload(mailing, group[0]) if group else b""
        written = False  # the envelope went out with the previous body
        for i, r in enumerate(group):
            try:
                replies = self._envelope(conn, _envelope(mailing, r), pipelined, written)
            except _Lost as e:
                # This body never left: safe to try again. The rest go on a new connection.
                self._note([r], f"connection lost before DATA ({e})")
                again.append(r)
                self._drop()
                conn, written = self._connection(), False
                if i + 1 < len(group):
                    body = _payload(mailing, group[i + 1])
                continue
            refused = _first_refusal(replies)
            if refused is not None:
                if replies[-1][0] == 354:  # into DATA after all: end the session empty-handed
                    self._drop()
                    self._note(group[i:], "the server went into DATA after a refusal")
                    return again + group[i:]
                self._judge(mailing, r, *refused, outcome, again)
                written = False
                if not self._reset(conn):
                    return again + group[i + 1 :]
                if i + 1 < len(group):
                    body = _payload(mailing, group[i + 1])
                continue
            # 354: this body and its final dot, with the next envelope when pipelined. The
            # next message is built first: if it cannot be, this one still ends properly.
            nxt = group[i + 1] if i + 1 < len(group) else None
            next_body, problem = b"", None
            if nxt is not None:
                try:
                    next_body = _payload(mailing, nxt)
                except LocalError as e:
                    nxt, problem = None, e
            ahead = _envelope(mailing, nxt) if pipelined and nxt is not None else b""
            try:
                code, reply = self._exchange(conn, body + ahead)
            except _Lost as e:
                # The server may have the whole message: never resend it silently.
                outcome.ambiguous[r.key] = f"connection lost after the message was sent ({e})"
                self._drop()
                conn, written, body = self._connection(), False, next_body
                if problem is not None:
                    raise problem from None
                continue
            written = bool(ahead)
            self._judge(mailing, r, code, reply, "end of DATA", outcome, again)
            if problem is not None:
                raise problem
            body = next_body
        return again

    def _envelope(
        self, conn: smtplib.SMTP, commands: bytes, pipelined: bool, written: bool
    ) -> list[tuple[int, bytes]]:
        """The replies to MAIL, RCPT and DATA. Pipelined, all three were (or now are)
        written at once; else each is written after the reply to the one before, and a
        refusal stops there."""
        lines = commands.split(b"\r\n")[:3]
        try:
            if pipelined:
                if not written:
                    conn.sock.sendall(commands)  # type: ignore[union-attr]
                return [conn.getreply() for _ in lines]
            replies = []
            for line in lines:
                replies.append(self._exchange(conn, line + b"\r\n"))
                if _first_refusal(replies) is not None:
                    break
            return replies
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            raise _Lost(str(e)) from None

    @staticmethod
    def _exchange(conn: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
        """Write, then read one reply."""
        try:
            conn.sock.sendall(data)  # type: ignore[union-attr]
            return conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            raise _Lost(str(e)) from None

    def _reset(self, conn: smtplib.SMTP) -> bool:
        """RSET after a refused message; False when the connection went with it."""
        try:
            self._exchange(conn, b"RSET\r\n")
            return True
        except _Lost:
            self._drop()
            return False

    def _judge(
        self,
        mailing: Mailing,
        r: Recipient,
        code: int,
        reply: bytes,
        stage: str,
        outcome: Outcome,
        again: list[Recipient],
    ) -> None:
        """The one rule for a reply to a message: 250 sent; 4xx tried again (nothing was
        taken); 5xx failed, and 5.1.x means the address is dead."""
        text = reply.decode("utf-8", "replace")
        if code == 250:
            outcome.sent[r.key] = mailing.message_id(r)
        elif 400 <= code < 500:
            self.last_refusal[r.key] = f"{code} {text}"
            again.append(r)
        else:
            outcome.failed[r.key] = f"{stage}: {code} {text}"[:500]
            m = _ENHANCED.search(reply)
            if code >= 500 and m and m.group(1) == b"5" and m.group(2) == b"1":
                outcome.bounced.add(r.key)

    def _note(self, group: Sequence[Recipient], why: str) -> None:
        for r in group:
            self.last_refusal[r.key] = why

    def _connection(self) -> smtplib.SMTP:
        if self.conn is None:
            self.conn = self._connect()
        return self.conn

    def _drop(self) -> None:
        _close(self.conn)
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.conn.quit()
            self._drop()


def _first_refusal(replies: list[tuple[int, bytes]]) -> tuple[int, bytes, str] | None:
    """The reply that refused a message's MAIL, RCPT or DATA, with its stage; or None."""
    for (code, text), stage, ok in zip(replies, _STAGES, _ACCEPTED, strict=False):
        if code not in ok:
            return code, text, stage
    return None


_STAGES = ("MAIL FROM", "RCPT TO", "DATA")
_ACCEPTED = ((250,), (250, 251), (354,))


def _envelope(mailing: Mailing, r: Recipient) -> bytes:
    """MAIL, RCPT and DATA for one message (one recipient each). Addresses are ASCII
    (validated without SMTPUTF8); one that is not cannot be sent, and nothing was."""
    sender = mailing.envelope_sender(r)
    if not (sender.isascii() and r.email.isascii()):
        raise LocalError(f"{r.email}: an address that is not ASCII needs SMTPUTF8")
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
