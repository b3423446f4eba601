"""The way back, tried as an attacker would: every report must prove it concerns a message
we sent to the person it names before it changes anybody (Dovecot, a real SMTP server).
Forged and unproven reports change nobody and stay visible; genuine ones still act; the
fetch loop survives hostile mail and several fetches at once."""

from __future__ import annotations

import email
import email.policy
import os
import secrets
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

from mailer.config import load_settings
from mailer.store import open_store
from tests.conftest import Cli
from tests.loop import BOUNCES, env, headers_of, issue, sent_to, statuses
from tests.mailservers import Dovecot
from tests.reports import arf_complaint, dsn_for_many, nested, postfix_dsn
from tests.servers import SmtpServer


def _ids(project: Path) -> dict[str, int]:
    with open_store(load_settings(project)) as store:
        return {s.email: s.id for s in store.subscribers.iter()}


def _append(imap: Dovecot, *messages: bytes) -> None:
    box = imap.client()
    for m in messages:
        box.append("INBOX", m)
    box.logout()


def _folder(imap: Dovecot, name: str) -> int:
    box = imap.client()
    try:
        if not box.folder_exists(name):
            return 0
        return int(box.select_folder(name)[b"EXISTS"])
    finally:
        box.logout()


def test_forged_and_unproven_reports_change_nobody_and_are_listed(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    readers = ["ann", "bob", "cat", "dan", "eve", *(f"p{i:02d}" for i in range(50))]
    for who in readers:
        run("subscribers", "add", f"{who}@example.com")
    e = env(smtp, imap)
    assert run("send", str(issue(run, 1)), "--yes", env=e).exit_code == 0
    ids = _ids(project)
    _, dan = sent_to(smtp, "dan@example.com")
    eve_verp, _ = sent_to(smtp, "eve@example.com")
    # Message-IDs no longer show anyone's id: the one sent to ann is opaque
    _, ann = sent_to(smtp, "ann@example.com")
    assert f".{ids['ann@example.com']:x}@" not in str(ann["Message-ID"])
    forged_old_shape = f"<0123456789abcdef.{ids['ann@example.com']:x}@news.example.com>"
    forged_new_shape = f"<{secrets.token_hex(28)}@news.example.com>"
    wrong_seal = BOUNCES.replace("@", "+" + "a" * 39 + "@")
    _append(
        imap,
        # 1. a complaint quoting a made-up Message-ID of our old shape, naming ann
        arf_complaint(
            BOUNCES, f"To: ann@example.com\nMessage-ID: {forged_old_shape}\n", "ann@example.com"
        ),
        # 2. one quoting a made-up Message-ID of the new shape
        arf_complaint(
            BOUNCES, f"To: ann@example.com\nMessage-ID: {forged_new_shape}\n", "ann@example.com"
        ),
        # 3. a bounce to a VERP address whose seal does not open, naming a real reader
        postfix_dsn(wrong_seal, "bob@example.com", "5.1.1"),
        # 4. a bounce to the bare bounce address naming fifty readers
        dsn_for_many(BOUNCES, [f"p{i:02d}@example.com" for i in range(50)]),
        # 5. a complaint naming cat only in the text it quotes
        arf_complaint(BOUNCES, "To: cat@example.com\nSubject: Issue 1\n", "cat@example.com"),
        # 6. dan's genuine headers quoted, but someone else's address failed
        postfix_dsn(BOUNCES, "ann@example.com", "5.1.1", headers_of(dan)),
        # and one genuine bounce, back to eve's own VERP address
        postfix_dsn(eve_verp, "eve@example.com", "5.1.1"),
    )
    r = run("bounces", "fetch", env=e)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("7 new message(s): 1 were marked bounced, 0 complained"), r.output
    assert r.output.splitlines()[0].endswith(", 55 unproven")  # a report for each address named
    assert statuses(project) == {f"{who}@example.com": "active" for who in readers} | {
        "eve@example.com": "bounced"
    }
    listed = [
        line for line in r.output.splitlines() if "unproven, moved to mailer-unmatched" in line
    ]
    assert len(listed) == 55
    assert "whose seal does not open" in r.output
    assert "the Message-ID it quotes is not one we sealed" in r.output
    assert "names another address than the one the quoted message went to" in r.output
    assert "it names only an address" in r.output
    assert _folder(imap, "mailer-unmatched") == 6 and _folder(imap, "mailer-processed") == 1
    assert _folder(imap, "INBOX") == 0
    again = run("bounces", "fetch", env=e)
    assert again.output.startswith("0 new message(s)")


def test_address_matching_is_an_explicit_opt_in(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    """A relay that rewrites envelopes and strips what we quote: the owner may choose to
    trust addresses, knowing anyone who can mail the bounce address can then suppress."""
    for who in ("ann", "bob"):
        run("subscribers", "add", f"{who}@example.com")
    e = env(smtp, imap)
    assert run("send", str(issue(run, 1)), "--yes", env=e).exit_code == 0
    _append(imap, dsn_for_many(BOUNCES, ["ann@example.com"]))
    r = run("bounces", "fetch", env={**e, "MAILER_BOUNCE_MATCH_ADDRESS": "true"})
    assert r.exit_code == 0 and "ann@example.com: bounced" in r.output, r.output
    assert statuses(project) == {"ann@example.com": "bounced", "bob@example.com": "active"}


def test_one_hostile_message_cannot_stop_the_loop(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    run("subscribers", "add", "dead@example.com")
    e = env(smtp, imap) | {"MAILER_BOUNCE_MAX_BYTES": "500000"}
    assert run("send", str(issue(run, 1)), "--yes", env=e).exit_code == 0
    verp, _ = sent_to(smtp, "dead@example.com")
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = "x@example.net", BOUNCES, "large"
    big.set_content("x" * 1_000_000)
    _append(
        imap,
        nested(3000),  # the email parser recurses once per level
        big.as_bytes(),
        postfix_dsn(verp, "dead@example.com", "5.1.1"),  # after them, still applied
    )
    r = run("bounces", "fetch", env=e)
    assert r.exit_code == 0, r.output
    assert statuses(project) == {"dead@example.com": "bounced"}
    assert "left in the mailbox: message 1: 3000 nested parts (at most 64): not read" in r.output
    assert (
        "left in the mailbox: message 2: " in r.output and "bounce_max_bytes is 500000" in r.output
    )
    box = imap.client()
    box.select_folder("INBOX")
    flags = box.get_flags(box.search("ALL"))
    box.logout()
    assert all(b"\\Flagged" in f for f in flags.values()) and len(flags) == 2
    again = run("bounces", "fetch", env=e)  # listed once; not downloaded again
    assert again.output.startswith("0 new message(s)")
    assert "left in the mailbox" not in again.output
    assert "2 message(s) listed by an earlier fetch stay in the mailbox" in again.output


def test_two_fetches_at_once_apply_each_report_once(
    run: Cli, project: Path, smtp: SmtpServer, imap: Dovecot
) -> None:
    people = [f"r{i:02d}@example.com" for i in range(20)]
    for p in people:
        run("subscribers", "add", p)
    e = env(smtp, imap)
    assert run("send", str(issue(run, 1)), "--yes", env=e).exit_code == 0
    _append(imap, *(postfix_dsn(sent_to(smtp, p)[0], p, "5.1.1") for p in people))
    cmd = [sys.executable, "-m", "mailer", "--project", str(project), "bounces", "fetch"]
    procs = [
        subprocess.Popen(
            cmd, env={**os.environ, **e}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-1500:] for o in outputs]
    assert set(statuses(project).values()) == {"bounced"}
    with open_store(load_settings(project)) as store, store.engine.connect() as conn:
        changes = conn.execute(
            sa.text("SELECT count(*) FROM status_changes WHERE new_status = 'bounced'")
        ).scalar()
        recorded = conn.execute(
            sa.text("SELECT count(*) FROM events WHERE type = 'bounced'")
        ).scalar()
    assert (changes, recorded) == (20, 20)
    assert _folder(imap, "mailer-processed") == 20 and _folder(imap, "INBOX") == 0


def test_the_sealed_ids_open_only_with_this_projects_key(
    run: Cli, project: Path, smtp: SmtpServer
) -> None:
    from mailer.tokens import VERP, Sealer, open_message_id, verp_ids

    run("subscribers", "add", "ann@example.com")
    assert run("send", str(issue(run, 1)), "--yes", env=env(smtp)).exit_code == 0
    verp, msg = sent_to(smtp, "ann@example.com")
    token = verp.split("+", 1)[1].split("@")[0]
    local = str(msg["Message-ID"]).strip("<>").split("@")[0]
    mine, other = Sealer(load_settings(project).secret_key), Sealer("another-secret-key-1234")
    ann = _ids(project)["ann@example.com"]
    assert verp_ids(mine, VERP, token) == (ann, 1) and verp_ids(other, VERP, token) is None
    assert open_message_id(mine, local) is not None and open_message_id(other, local) is None
    flipped = local[:-1] + ("0" if local[-1] != "0" else "1")
    assert open_message_id(mine, flipped) is None
    parsed = email.message_from_bytes(smtp.handler.messages[0], policy=email.policy.compat32)
    assert parsed["Message-ID"] == msg["Message-ID"]
