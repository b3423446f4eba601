"""Bounce and complaint reports as mail servers write them, made with the email package:
RFC 3464 delivery status notifications in Postfix's layout, Exim's classic bounce, an
RFC 5965 ARF complaint, and the other mail a bounce mailbox gets (auto-replies, spam)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid


def postfix_dsn(
    to: str,
    recipient: str,
    status: str,
    original_headers: str | None = None,
    diagnostic: str = "",
) -> bytes:
    """Postfix's DSN, laid out as Postfix writes it: multipart/report with a text part,
    message/delivery-status and, if given, the original headers (text/rfc822-headers).
    `to` is the envelope sender it returns to (a VERP address, or the plain one)."""
    delayed = status.startswith("4")
    diagnostic = diagnostic or (
        f"host mx.example.com said: 452 {status} Mailbox full"
        if delayed
        else f"host mx.example.com said: 550 {status} User unknown"
    )
    boundary = "4Zx1y2z3.1700000000/mx.example.net"
    subject = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    notice = (
        "####################################################################\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        "####################################################################\n\n"
        "Your message could not be delivered for more than 4 hour(s).\n"
        "It will be retried until it is 5 day(s) old.\n"
        if delayed
        else "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n"
    )
    parts = [
        f"Return-Path: <>\nDelivered-To: {to}\n"
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        f"Subject: {subject}\nTo: {to}\nAuto-Submitted: auto-replied\n"
        f"Date: {formatdate()}\nMessage-Id: <20261123.4Zx1y2z3@mx.example.net>\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"\n'
        "\nThis is a MIME-encapsulated message.\n",
        "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"This is the mail system at host mx.example.net.\n\n{notice}\n"
        f"<{recipient}>: {diagnostic}\n",
        "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\nX-Postfix-Queue-ID: 4Zx1y2z3\n"
        f"Arrival-Date: {formatdate()}\n\n"
        f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
        f"Action: {'delayed' if delayed else 'failed'}\nStatus: {status}\n"
        f"Remote-MTA: dns; mx.example.com\nDiagnostic-Code: smtp; {diagnostic}\n",
    ]
    if original_headers is not None:
        parts.append(
            "Content-Description: Undelivered Message Headers\n"
            "Content-Type: text/rfc822-headers\n\n" + original_headers
        )
    body = parts[0] + "".join(f"\n--{boundary}\n{p}" for p in parts[1:]) + f"\n--{boundary}--\n"
    return body.replace("\n", "\r\n").encode("ascii")


def exim_bounce(to: str, recipient: str, original: str) -> bytes:
    """Exim's classic bounce: plain text, X-Failed-Recipients, the message copied below."""
    msg = EmailMessage()
    msg["From"] = "Mail Delivery System <Mailer-Daemon@mx.example.org>"
    msg["To"] = to
    msg["Envelope-To"] = to
    msg["Subject"] = "Mail delivery failed: returning message to sender"
    msg["Date"] = formatdate()
    msg["Message-ID"] = make_msgid(domain="mx.example.org")
    msg["X-Failed-Recipients"] = recipient
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {recipient}\n"
        "    host mx.example.org [192.0.2.1]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{recipient}>:\n"
        "    550 5.1.1 User unknown\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n" + original
    )
    return msg.as_bytes()


def arf_complaint(to: str, original_headers: str, complainer: str) -> bytes:
    """An RFC 5965 feedback report, as the mailbox providers' loops send them."""
    boundary = "----=_arf_boundary_1700000000"
    text = (
        f"From: feedback@fbl.example.com\nTo: {to}\nSubject: FW: complaint\n"
        f"Date: {formatdate()}\nMessage-ID: <arf.1700000000@fbl.example.com>\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=feedback-report;\n\tboundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n"
        "This is an email abuse report for an email message received from IP 192.0.2.7.\n"
        f"\n--{boundary}\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: abuse\nUser-Agent: ExampleFBL/1.0\nVersion: 1\n"
        f"Original-Rcpt-To: {complainer}\nArrival-Date: {formatdate()}\nSource-IP: 192.0.2.7\n"
        f"\n--{boundary}\nContent-Type: text/rfc822-headers\n\n{original_headers}"
        f"\n--{boundary}--\n"
    )
    return text.replace("\n", "\r\n").encode("ascii")


def auto_reply(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@example.com>"
    msg["To"] = to
    msg["Subject"] = "Automatic reply: out of office"
    msg["Auto-Submitted"] = "auto-replied"
    msg["Date"] = formatdate()
    msg.set_content("I am away until Monday and will read your message then.\n")
    return msg.as_bytes()


def spam(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Deals <deals@shop.example>"
    msg["To"] = to
    msg["Subject"] = "You have WON a prize"
    msg["Date"] = formatdate()
    msg.set_content("Click here to claim your prize today!\n")
    return msg.as_bytes()


def dsn_for_many(to: str, recipients: list[str], status: str = "5.1.1") -> bytes:
    """One DSN with a Final-Recipient block per address, as an attacker would write it."""
    boundary = "many.1700000000/mx.example.net"
    blocks = "".join(
        f"\nFinal-Recipient: rfc822; {r}\nAction: failed\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} User unknown\n"
        for r in recipients
    )
    text = (
        f"From: MAILER-DAEMON@mx.example.net\nTo: {to}\nSubject: Undelivered Mail\n"
        f"Date: {formatdate()}\nMessage-ID: <many.1700000000@mx.example.net>\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/plain\n\n"
        + "".join(f"<{r}>: 550 {status} User unknown\n" for r in recipients)
        + f"\n--{boundary}\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n" + blocks + f"\n--{boundary}--\n"
    )
    return text.replace("\n", "\r\n").encode("ascii")


def nested(depth: int, inner: bytes = b"") -> bytes:
    """A message whose multiparts nest `depth` deep."""
    head = b"From: x@example.net\r\nTo: y@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello" + inner + closing
