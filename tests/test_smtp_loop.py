"""The SMTP loop against real servers: VERP envelope senders (aiosmtpd), bounce and
complaint reports read from a real IMAP mailbox (Dovecot), DKIM signatures verified by
dkimpy, and TLS (STARTTLS and implicit) with a certificate made in the test."""

from __future__ import annotations

import email
import email.policy
import re
import ssl
from pathlib import Path

import pytest

from mailer.config import load_settings
from mailer.store import open_store
from mailer.tokens import VERP, Sealer, verp_ids
from tests.conftest import Cli, wait_until, write
from tests.loop import BOUNCES, env, headers_of, issue, sent_to, statuses
from tests.mailservers import Dovecot, make_certs
from tests.reports import arf_complaint, auto_reply, exim_bounce, postfix_dsn, spam
from tests.servers import SmtpServer

SIGNING = {
    "MAILER_DKIM_DOMAIN": "example.com",
    "MAILER_DKIM_SELECTOR": "s1",
    "MAILER_DKIM_PRIVATE_KEY": "dkim.pem",  # made by the dkim_key fixture
}


def test_every_message_has_its_own_signed_envelope_sender(
    run: Cli, project: Path, smtp: SmtpServer
) -> None:
    run("subscribers", "add", "ann@example.com")
    run("subscribers", "add", "bob@example.com")
    assert run("send", str(issue(run, 1)), "--yes", env=env(smtp)).exit_code == 0
    senders = {}
    settings = load_settings(project)
    for sender, rcpts in smtp.handler.envelopes:
        local, _, domain = sender.partition("@")
        assert domain == "news.example.com" and local.startswith("bounces+") and len(local) <= 64
        token = local.removeprefix("bounces+")
        assert re.fullmatch(r"[a-z2-7]{39}", token)  # opaque: no id shows
        ids = verp_ids(Sealer(settings.secret_key), VERP, token.upper())  # any case
        assert ids is not None
        senders[rcpts[0]] = ids
    with open_store(settings) as store:
        ann = store.subscribers.require("ann@example.com").id
    assert senders["ann@example.com"][0] == ann and len(set(senders.values())) == 2


def test_bounces_fetch_applies_reports_from_a_real_mailbox(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    people = [
        "dead@example.com",
        "gone@example.com",
        "exim@example.com",
        "full@example.com",
        "angry@example.com",
        "fine@example.com",
    ]
    for p in people:
        run("subscribers", "add", p)
    e = env(smtp, imap)
    for n in (1, 2, 3):
        assert run("send", str(issue(run, n)), "--yes", env=e).exit_code == 0
    mailbox = imap.client()
    # a hard bounce that quotes nothing, back to its VERP address: only VERP can place it
    verp, _ = sent_to(smtp, "dead@example.com")
    mailbox.append("INBOX", postfix_dsn(verp, "someone-else@relay.example", "5.1.1"))
    # a hard bounce to the plain address: Final-Recipient and our Message-ID place it
    _, gone = sent_to(smtp, "gone@example.com")
    mailbox.append("INBOX", postfix_dsn(BOUNCES, "gone@example.com", "5.1.1", headers_of(gone)))
    # Exim's classic bounce, plain text with X-Failed-Recipients
    _, ex = sent_to(smtp, "exim@example.com")
    mailbox.append("INBOX", exim_bounce(BOUNCES, "exim@example.com", headers_of(ex) + "\nNews.\n"))
    # a full mailbox: soft bounces, one per issue; three in a row suppress
    for sender, rcpts in smtp.handler.envelopes:
        if rcpts == ["full@example.com"]:
            mailbox.append("INBOX", postfix_dsn(sender, "full@example.com", "4.2.2"))
    # a complaint through a feedback loop
    _, angry = sent_to(smtp, "angry@example.com")
    mailbox.append("INBOX", arf_complaint(BOUNCES, headers_of(angry), "angry@example.com"))
    # and what else lands there
    mailbox.append("INBOX", auto_reply(BOUNCES))
    mailbox.append("INBOX", spam(BOUNCES))
    mailbox.logout()

    before = statuses(project)
    r = run("bounces", "fetch", "--dry-run", env=e)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(
        "9 new message(s): 4 would be marked bounced, 1 complained, 2 soft bounce(s) counted"
    )
    assert statuses(project) == before
    box = imap.client()
    assert box.select_folder("INBOX")[b"EXISTS"] == 9  # a dry run moves nothing

    r = run("bounces", "fetch", env=e)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(
        "9 new message(s): 4 were marked bounced, 1 complained, 2 soft bounce(s) counted"
    )
    assert "moved 7 to mailer-processed" in r.output
    assert r.output.count("left in the mailbox") == 2
    assert statuses(project) == {
        "dead@example.com": "bounced",
        "gone@example.com": "bounced",
        "exim@example.com": "bounced",
        "full@example.com": "bounced",
        "angry@example.com": "complained",
        "fine@example.com": "active",
    }
    assert box.select_folder("INBOX")[b"EXISTS"] == 2  # the auto-reply and the spam stay
    assert box.select_folder("mailer-processed")[b"EXISTS"] == 7
    box.logout()

    again = run("bounces", "fetch", env=e)  # what stayed is not read again
    assert again.output.startswith("0 new message(s): 0 were marked bounced, 0 complained, 0 soft")
    assert "2 message(s) listed by an earlier fetch stay in the mailbox" in again.output
    assert statuses(project)["fine@example.com"] == "active"
    # and the suppressed are never mailed again
    smtp.handler.envelopes.clear()
    assert run("send", str(issue(run, 4)), "--yes", env=e).exit_code == 0
    assert [r for _, r in smtp.handler.envelopes] == [["fine@example.com"]]


def test_two_soft_bounces_are_not_yet_a_bounce(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    run("subscribers", "add", "full@example.com")
    e = env(smtp, imap)
    for n in (1, 2, 3):
        assert run("send", str(issue(run, n)), "--yes", env=e).exit_code == 0
    mailbox = imap.client()
    for sender, _ in smtp.handler.envelopes[:2]:
        mailbox.append("INBOX", postfix_dsn(sender, "full@example.com", "4.2.2"))
    mailbox.logout()
    assert run("bounces", "fetch", env=e).exit_code == 0
    assert statuses(project) == {"full@example.com": "active"}


def test_a_wrong_password_or_untrusted_mailbox_is_one_line(
    run: Cli, smtp: SmtpServer, imap: Dovecot
) -> None:
    e = env(smtp, imap)
    r = run("bounces", "fetch", env={**e, "MAILER_BOUNCE_IMAP_PASSWORD": "wrong"})
    assert r.exit_code == 1 and r.output.startswith(
        f"Error: bounce mailbox 127.0.0.1:{imap.port} refused:"
    )
    r = run("bounces", "fetch", env={**e, "MAILER_BOUNCE_IMAP_CA_FILE": ""})
    assert r.exit_code == 1 and "its TLS certificate is not trusted" in r.output


# -- DKIM ------------------------------------------------------------------------------


@pytest.fixture
def dkim_key(run: Cli, project: Path) -> str:
    r = run(
        "dkim",
        "keygen",
        "--domain",
        "example.com",
        "--selector",
        "s1",
        "-o",
        str(project / "dkim.pem"),
    )
    assert r.exit_code == 0, r.output
    (record,) = [line for line in r.output.splitlines() if "._domainkey." in line]
    return record


def test_dkim_signatures_verify_and_break_when_altered(
    run: Cli, project: Path, dkim_key: str
) -> None:
    import dkim

    from mailer.compose.dkim import txt_record_value

    run("subscribers", "add", "ann@example.com")
    signing = SIGNING
    assert run("send", str(issue(run, 1)), "--yes", env=signing).exit_code == 0
    (eml,) = (project / "outbox").rglob("*.eml")
    raw = eml.read_bytes()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.com."
        return txt_record_value(dkim_key)

    assert dkim.verify(raw, dnsfunc=dns)
    signature = re.search(rb"^DKIM-Signature:.*?(?=^\S)", raw, re.M | re.S).group(0)  # type: ignore[union-attr]
    h = (
        re.search(
            rb"h=([^;]+);", signature.replace(b"\r\n", b"").replace(b" ", b"").replace(b"\t", b"")
        )
        .group(1)
        .lower()
    )  # type: ignore[union-attr]
    oversigned = (
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
    )
    for name in (*oversigned, b"list-id"):
        assert name in h.split(b":"), name
    tampered = raw.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <https://evil.", 1)
    assert tampered != raw and not dkim.verify(tampered, dnsfunc=dns)
    body_changed = raw.replace(b"News number 1", b"News number 9", 1)
    assert body_changed != raw and not dkim.verify(body_changed, dnsfunc=dns)
    # Over-signed (RFC 6376 8.15): each of these is named once more in h= than it occurs,
    # so a copy prepended after signing (what a reader's client would show) breaks it.
    for name in oversigned:
        assert h.split(b":").count(name) == 2, name
    added = {
        b"from": b"From: Your Bank <security@bank.example>",
        b"subject": b"Subject: Urgent: verify your account",
        b"list-unsubscribe": b"List-Unsubscribe: <https://evil.example/u>",
        b"message-id": b"Message-ID: <forged@evil.example>",
    }
    for name, line in added.items():
        prepended = line + b"\r\n" + raw
        assert not dkim.verify(prepended, dnsfunc=dns), name
    appended_elsewhere = raw.replace(b"\r\n\r\n", b"\r\nX-Note: not signed\r\n\r\n", 1)
    assert dkim.verify(appended_elsewhere, dnsfunc=dns)  # a header not signed changes nothing


def test_dkim_over_smtp_and_bad_keys_are_one_line(
    run: Cli, project: Path, smtp: SmtpServer, dkim_key: str
) -> None:
    run("subscribers", "add", "ann@example.com")
    signing = SIGNING
    assert run("send", str(issue(run, 1)), "--yes", env={**env(smtp), **signing}).exit_code == 0
    assert smtp.handler.messages[0].startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    r = run(
        "send",
        str(issue(run, 2)),
        "--yes",
        env={**signing, "MAILER_DKIM_PRIVATE_KEY": "missing.pem"},
    )
    assert r.exit_code == 1 and "dkim_private_key " in r.output and "cannot read it" in r.output
    write(
        project / "bad.pem", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
    )
    r = run(
        "send", str(issue(run, 2)), "--yes", env={**signing, "MAILER_DKIM_PRIVATE_KEY": "bad.pem"}
    )
    assert r.exit_code == 1 and r.output.startswith(
        "Error: dkim_private_key is not an unencrypted PEM private key"
    )
    r = run("send", str(issue(run, 2)), "--yes", env={"MAILER_DKIM_DOMAIN": "example.com"})
    assert r.output.startswith(
        "Error: DKIM needs dkim_domain, dkim_selector and dkim_private_key; set dkim_selector"
    )
    assert run(
        "dkim", "keygen", "--domain", "example.com", "-o", str(project / "dkim.pem")
    ).output.startswith(f"Error: {project / 'dkim.pem'} exists already")


@pytest.mark.parametrize("kind", ["ed25519", "ec", "dsa"])
def test_a_key_mailer_cannot_sign_with_stops_every_send_before_anyone(
    run: Cli, project: Path, smtp: SmtpServer, kind: str
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519

    key = {
        "ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
        "ec": lambda: ec.generate_private_key(ec.SECP256R1()),
        "dsa": lambda: dsa.generate_private_key(2048),
    }[kind]()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (project / "other.pem").write_bytes(pem)
    run("subscribers", "add", "ann@example.com")
    signing = {**SIGNING, "MAILER_DKIM_PRIVATE_KEY": "other.pem"}
    path = str(issue(run, 1))
    for provider, extra in (("smtp", env(smtp)), ("outbox", {})):
        for args in (("send", path, "--yes"), ("send", path, "--test", "me@example.com")):
            r = run(*args, env={**extra, **signing, "MAILER_PROVIDER": provider})
            assert r.exit_code == 1, (provider, args, r.output)
            assert r.output.startswith("Error: dkim_private_key is not an RSA key"), r.output
            assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert smtp.handler.messages == [] and not (project / "outbox").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--selector", "a;b"),
        ("--selector", "a b"),
        ("--selector", "-a"),
        ("--selector", "a..b"),
        ("--selector", "x" * 64),
        ("--selector", "é"),
        ("--domain", "exa mple.com"),
        ("--domain", "example.com;x"),
        ("--domain", "-a.example.com"),
        ("--domain", "localhost"),
        ("--domain", 'a"b.com'),
    ],
)
def test_keygen_refuses_a_name_dns_cannot_hold(
    run: Cli, project: Path, option: str, value: str
) -> None:
    args = {"--selector": "mailer", "--domain": "example.com", option: value}
    out = project / "k.pem"
    r = run("dkim", "keygen", *[x for kv in args.items() for x in kv], "-o", str(out))
    assert r.exit_code == 1 and r.output.startswith(f"Error: {option} "), r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


# -- TLS -------------------------------------------------------------------------------


def tls_server(certs, mode: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """aiosmtpd's arguments for STARTTLS (required) or implicit TLS with these certs."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    if mode == "starttls":
        return {"tls_context": context, "require_starttls": True}
    return {"ssl_context": context}


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_with_a_private_ca(run: Cli, project: Path, tmp_path: Path, mode: str) -> None:
    certs = make_certs(tmp_path / "tls")
    kwargs = tls_server(certs, mode)
    run("subscribers", "add", "ann@example.com")
    with SmtpServer(**kwargs) as server:
        tls = {**env(server), "MAILER_SMTP_SECURITY": mode, "MAILER_SMTP_CA_FILE": str(certs.ca)}
        r = run("send", str(issue(run, 1)), "--yes", env=tls)
        assert r.exit_code == 0, r.output
        assert dict(server.handler.delivered) == {"ann@example.com": 1}


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_a_certificate_for_another_host_is_refused(
    run: Cli, project: Path, tmp_path: Path, mode: str
) -> None:
    certs = make_certs(tmp_path / "tls", names=("mail.example.test",))
    kwargs = tls_server(certs, mode)
    run("subscribers", "add", "ann@example.com")
    with SmtpServer(**kwargs) as server:
        tls = {**env(server), "MAILER_SMTP_SECURITY": mode, "MAILER_SMTP_CA_FILE": str(certs.ca)}
        r = run("send", str(issue(run, 1)), "--yes", env=tls)
        assert r.exit_code == 1, r.output
        assert (
            f"Error: stopped: SMTP server 127.0.0.1:{server.port}: its TLS certificate is not trusted (IP address mismatch"
            in r.output
        )
        assert not server.handler.delivered
    status = run("status", str(issue(run, 1)), "--json")
    assert '"pending": 1' in status.output  # nothing sent, nothing ambiguous


def test_openssl_rsa_gives_dkimpys_exact_signature(
    project: Path, dkim_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one step handed to OpenSSL (the RSA operation) yields dkimpy's own bytes."""
    import dkim
    import dkim.crypto

    from mailer.compose.dkim import DkimSigner

    monkeypatch.setattr(dkim.time, "time", lambda: 1_790_000_000)  # the same t= for both
    signer = DkimSigner("example.com", "s1", (project / "dkim.pem").read_bytes())
    message = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nbody\r\n"
    fast = signer.sign(message)
    patched = dkim.RSASSA_PKCS1_v1_5_sign
    try:
        dkim.RSASSA_PKCS1_v1_5_sign = dkim.crypto.RSASSA_PKCS1_v1_5_sign  # dkimpy's pure Python
        slow = signer.sign(message)
    finally:
        dkim.RSASSA_PKCS1_v1_5_sign = patched
    assert patched is not dkim.crypto.RSASSA_PKCS1_v1_5_sign
    assert fast == slow and b"t=1790000000;" in fast


def test_the_list_unsubscribe_mailto_works(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    from email.message import EmailMessage

    run("subscribers", "add", "leave@example.com")
    e = env(smtp, imap)
    assert run("send", str(issue(run, 1)), "--yes", env=e).exit_code == 0
    _, sent = sent_to(smtp, "leave@example.com")
    raw = next(m for m in reversed(smtp.handler.messages) if b"To: leave@example.com" in m)
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    folded = re.search(r"^List-Unsubscribe: .*?(?=\r\n\S)", head, re.S | re.M)
    assert folded and "\r\n " in folded.group()  # two URIs: folded after the comma
    for line in folded.group().split("\r\n"):  # one URI a line; a URI itself cannot fold
        assert len(line) <= 78 or line.count("<") == 1, folded.group()
    header = str(sent["List-Unsubscribe"]).replace("\r\n", "").replace("\n", "")
    m = re.search(r"<mailto:(bounces\+u\.[^?>]+@news\.example\.com)\?subject=unsubscribe>", header)
    assert m and header.startswith("<https://news.example.com/u/"), header
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    request = EmailMessage()  # what Gmail's "Unsubscribe" sends when it picks the mailto:
    request["From"] = "leave@example.com"
    request["To"] = m.group(1)
    request["Delivered-To"] = m.group(1)
    request["Subject"] = "unsubscribe"
    request.set_content("This message was automatically generated by Gmail.\n")
    box = imap.client()
    box.append("INBOX", request.as_bytes())
    box.logout()
    r = run("bounces", "fetch", env=e)
    assert "1 unsubscribed by mail" in r.output, r.output
    assert statuses(project) == {"leave@example.com": "unsubscribed"}


def test_headers_for_providers_and_readers(run: Cli, project: Path) -> None:
    run("subscribers", "add", "ann@example.com")
    assert run("send", str(issue(run, 1)), "--yes").exit_code == 0
    (eml,) = (project / "outbox").rglob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.compat32)
    assert str(msg["Date"]).endswith("+0000")
    assert msg["Feedback-ID"] == "2026-12-01-weekly:newsletter.example.com:newsletter:mailer"
    assert msg["Precedence"] == "bulk"
    assert "mailto:" not in str(msg["List-Unsubscribe"])  # nobody reads that mailbox here


def test_serve_fetches_bounces_on_its_interval(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    """One long-running `mailer serve` covers the loop: its thread reads the mailbox."""

    from starlette.testclient import TestClient

    from mailer.web.serve import create_app

    run("subscribers", "add", "dead@example.com")
    e = env(smtp, imap)
    assert run("send", str(issue(run, 1)), "--yes", env=e).exit_code == 0
    verp, _ = sent_to(smtp, "dead@example.com")
    box = imap.client()
    box.append("INBOX", postfix_dsn(verp, "dead@example.com", "5.1.1"))
    box.logout()
    settings = load_settings(
        project,
        {
            "bounce_address": BOUNCES,
            "bounce_imap_url": imap.url,
            "bounce_imap_password": imap.password,
            "bounce_imap_ca_file": str(imap.certs.ca),
            "bounce_fetch_interval": 0.2,
        },
    )
    with open_store(settings) as store, TestClient(create_app(settings, store)):
        # the serve's bounce thread does the work
        wait_until(lambda: statuses(project)["dead@example.com"] == "bounced", "the bounce")
    assert statuses(project) == {"dead@example.com": "bounced"}
