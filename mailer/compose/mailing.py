"""The mailing: one issue (or one ad-hoc mail) as providers see it, built from a Snapshot.

It implements `models.Mailing`. Everything the same for all recipients is prepared
once here; a recipient then costs a token signature, one string join per part and one
encoding pass. A ledger send reads the snapshot the ledger pinned, never the file.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping

from mailer.compose.dkim import signer_from
from mailer.compose.message import (
    EncodedBody,
    MessageFactory,
    address,
    crlf,
    list_headers,
    list_unsubscribe,
)
from mailer.config import Settings
from mailer.content.links import article_links, counted
from mailer.content.placeholders import Compiled, both_values, field_values
from mailer.content.render import RenderedIssue
from mailer.models import Fields, Recipient, Snapshot
from mailer.tokens import (
    MAILTO,
    VERP,
    Sealer,
    TokenSigner,
    click_signer,
    message_id_token,
    unsubscribe_prefix,
    unsubscribe_signer,
    unsubscribe_token,
    verp_address,
    verp_token,
)

PREVIEW_SECRET = "preview-only-not-a-real-secret"


def snapshot_of(settings: Settings, rendered: RenderedIssue) -> Snapshot:
    """What the ledger pins for an issue: subject, preheader, both templates, headers."""
    issue = rendered.issue
    headers = {
        "List-Id": f"{settings.display_name} <{settings.effective_list_id}>",
        # Gmail's feedback loop groups complaints by these (campaign:list:type:sender).
        "Feedback-ID": f"{issue.slug}:{settings.effective_list_id}:newsletter:mailer",
        # Vacation responders skip bulk mail: no "I am away" reply to every issue.
        "Precedence": "bulk",
    }
    base = settings.base_url.rstrip("/")
    if base:
        # RFC 2369: where past issues are, and that this list takes no posts.
        headers["List-Archive"] = f"<{base}/archive/>"
        headers["List-Post"] = "NO"
    return Snapshot(
        subject=issue.subject,
        preheader=issue.preheader,
        html=rendered.html.template,
        text=rendered.text.template,
        headers=headers,
        source=settings.relative(issue.source),
        web_html=rendered.web_html if issue.archive else "",
        archive=issue.archive,
        date=issue.date,
        links=article_links(rendered.html.template, settings.base_url),
    )


class IssueMailing:
    def __init__(
        self,
        settings: Settings,
        snapshot: Snapshot,
        *,
        slug: str,
        issue_id: int,
        ref: int,
        message_nonce: str | None = None,
        version: int = 1,
        adhoc: bool = False,
        links: Mapping[str, int] | None = None,
    ) -> None:
        """`links`: the issue's link numbers, when its links are counted (count_clicks)."""
        self.slug = slug
        self.issue_id = issue_id
        self.ref = ref
        self.version = version
        self.adhoc = adhoc
        if links:
            signer = click_signer(settings.secret_key or PREVIEW_SECRET)
            prefix = (settings.base_url or "https://example.invalid").rstrip("/") + "/l/"
            html, text = counted(
                snapshot.html, snapshot.text, links, lambda n: prefix + signer.sign(ref, n)
            )
            snapshot = dataclasses.replace(snapshot, html=html, text=text)
        self.snapshot = snapshot
        self.subject = snapshot.subject
        self.from_email = settings.from_email
        self.from_name = settings.from_name
        self.reply_to = settings.reply_to
        self.domain = settings.from_email.rpartition("@")[2] or "localhost"
        self.issue_headers: Mapping[str, str] = dict(snapshot.headers)
        self.html = Compiled.of(snapshot.html)
        self.text = Compiled.of(snapshot.text)
        self.html_fields = frozenset(self.html.fields)
        self.text_fields = frozenset(self.text.fields)
        # A ledger send's nonce is stored with the issue, so a deliberate resend keeps a
        # recipient's Message-ID; an ad-hoc mail gets a fresh one every time.
        self.nonce = message_nonce or secrets.token_hex(8)
        self.base_url = settings.base_url or "https://example.invalid"
        self.unsubscribe_prefix = unsubscribe_prefix(self.base_url)
        self.signer: TokenSigner = unsubscribe_signer(settings.secret_key or PREVIEW_SECRET)
        self.sealer = Sealer(settings.secret_key or PREVIEW_SECRET)
        self.bounce_address = settings.bounce_address
        # A mailto: unsubscribe only where `mailer bounces fetch` reads the mailbox.
        self.mailto_unsubscribe = bool(settings.bounce_address and settings.bounce_imap_url)
        self.dkim = signer_from(settings)
        self.factory = MessageFactory(
            sender=address(settings.from_name, settings.from_email),
            reply_to=settings.reply_to,
            subject=snapshot.subject,
            issue_headers=dict(snapshot.headers),
            seed=f"{slug}.{self.nonce}",
            text_sample=snapshot.text,
            html_sample=snapshot.html,
        )
        # The bodies normalized to CRLF and encoded as far as their first placeholder, once
        # per issue: a message then costs its footer, not 30 KB (values hold no line break).
        self._html_body = EncodedBody(
            Compiled.of(crlf(snapshot.html)), self.factory.html_part.transfer_encoding
        )
        self._text_body = EncodedBody(
            Compiled.of(crlf(snapshot.text)), self.factory.text_part.transfer_encoding
        )

    def html_template(self, keys: Mapping[str, str]) -> str:
        return self.html.fill(keys)

    def text_template(self, keys: Mapping[str, str]) -> str:
        return self.text.fill(keys)

    def unsubscribe_url(self, r: Recipient) -> str:
        return self.unsubscribe_prefix + unsubscribe_token(self.signer, r, self.ref)

    def fields(self, r: Recipient) -> Fields:
        return field_values(self.unsubscribe_url(r), r.email, r.name)

    def list_headers(self, unsubscribe_url: str, r: Recipient | None = None) -> dict[str, str]:
        return list_headers(unsubscribe_url, self.unsubscribe_mailto(r) if r else "")

    def list_unsubscribe(self, unsubscribe_url: str, r: Recipient) -> str:
        return list_unsubscribe(unsubscribe_url, self.unsubscribe_mailto(r))

    def unsubscribe_mailto(self, r: Recipient) -> str:
        """bounces+u.TOKEN@domain: a mail to it unsubscribes r (read by bounces fetch)."""
        if not self.mailto_unsubscribe or r.key <= 0 or self.issue_id <= 0:
            return ""
        token = "u." + verp_token(self.sealer, MAILTO, r.key, self.issue_id)
        return verp_address(self.bounce_address, token)

    def message_id(self, r: Recipient) -> str:
        """A ledger message's id is sealed (no subscriber id shows, and a report that quotes
        it proves whom it concerns); an ad-hoc mail's is random."""
        if self.adhoc or r.key <= 0:
            return f"<{self.nonce}.t{abs(r.key):x}@{self.domain}>"
        return f"<{message_id_token(self.sealer, self.nonce, r.key)}@{self.domain}>"

    def parts(self, r: Recipient) -> tuple[str, str, str]:
        """(html, text, unsubscribe URL) for one recipient."""
        url = self.unsubscribe_url(r)
        html_values, text_values = both_values(url, r.email, r.name)
        return self.html.fill(html_values), self.text.fill(text_values), url

    def envelope_sender(self, r: Recipient) -> str:
        """MAIL FROM: with bounce_address, one per message (VERP), so a bounce names its
        recipient and issue even when it quotes nothing useful."""
        if not self.bounce_address:
            return self.from_email
        if r.key <= 0 or self.issue_id <= 0:
            return self.bounce_address
        return verp_address(
            self.bounce_address, verp_token(self.sealer, VERP, r.key, self.issue_id)
        )

    def message(self, r: Recipient) -> bytes:
        # Templates, headers and the other values are CRLF-clean by construction (names
        # pass clean_text); the address is the one value from outside, so it is checked.
        if "\n" in r.email or "\r" in r.email:
            raise ValueError("the address holds a line break")
        url = self.unsubscribe_url(r)
        html_values, text_values = both_values(url, r.email, r.name)
        data = self.factory.build(
            address(text_values["name"], r.email),  # cleaned once, by both_values
            self.message_id(r),
            self.list_headers(url, r),
            self._html_body.fill(html_values),
            self._text_body.fill(text_values),
        )
        return self.dkim.sign(data) if self.dkim is not None else data
