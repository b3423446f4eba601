"""The shared vocabulary: statuses, states, event types, the status policy, value types.

Everything here is plain data or a pure rule, so every layer above may import it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class SubscriberStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # awaiting double opt-in
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Statuses a person (or their mail server) chose; nothing automatic ever undoes them.
SUPPRESSED = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)
# How strongly a status says "do not mail": a machine may only move a person up this scale.
SEVERITY = {
    SubscriberStatus.ACTIVE: 0,
    SubscriberStatus.PENDING: 0,
    SubscriberStatus.UNSUBSCRIBED: 1,
    SubscriberStatus.BOUNCED: 2,
    SubscriberStatus.COMPLAINED: 3,
}


class Actor(StrEnum):
    """Who asks for a status change. The policy below is decided by this, not by the caller."""

    PROVIDER = "provider"  # webhook events, suppression sync, SMTP bounces: a machine
    IMPORT = "import"  # a CSV import
    ONE_CLICK = "one-click"  # the person's unsubscribe link (RFC 8058)
    CONFIRMED = "confirmed"  # the person clicked a fresh double opt-in confirmation
    OWNER = "owner"  # the list's owner, explicitly, at the command line


def may_change(old: SubscriberStatus | str, new: SubscriberStatus | str, actor: Actor) -> bool:
    """The one status policy: may `actor` move a subscriber from `old` to `new`?

    - Nobody but the person (a fresh confirmation) or the owner (explicitly) makes anyone
      active; the owner cannot confirm a pending sign-up for them.
    - Machines, imports and the owner only ever raise suppression (unsubscribed < bounced <
      complained), never lower it; a one-click unsubscribe never replaces bounced or
      complained.
    """
    old, new = SubscriberStatus(old), SubscriberStatus(new)
    if old == new:
        return False
    if new is SubscriberStatus.ACTIVE:
        if actor is Actor.CONFIRMED:
            return old is not SubscriberStatus.ACTIVE
        return actor is Actor.OWNER
    if new is SubscriberStatus.PENDING:
        return False  # only a new sign-up is pending; nobody goes back to it
    if actor is Actor.ONE_CLICK:
        return new is SubscriberStatus.UNSUBSCRIBED and old not in SUPPRESSED
    if actor is Actor.CONFIRMED:
        return False
    return SEVERITY[new] > SEVERITY[old]


class BatchState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # leased by one sender; nothing sent yet
    REQUESTING = "requesting"  # a provider request may be in flight
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"


class RecipientState(StrEnum):
    PENDING = "pending"
    REQUESTING = "requesting"
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"  # may or may not have been delivered: never resent silently
    SKIPPED = "skipped"  # no longer active when its batch went out


class EventType(StrEnum):
    """What happened to a message, in our own words; every source maps its words onto these."""

    PROCESSED = "processed"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BLOCKED = "blocked"
    BOUNCED = "bounced"  # a permanent failure: the address is dead
    SOFT_BOUNCED = "soft_bounced"  # a temporary failure reported back (a 4.x.x DSN)
    DROPPED = "dropped"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    UNKNOWN = "unknown"


# The status a report of this type puts on the person it concerns.
STATUS_FOR = {
    EventType.BOUNCED: SubscriberStatus.BOUNCED,
    EventType.COMPLAINED: SubscriberStatus.COMPLAINED,
    EventType.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
}


class Source(StrEnum):
    """Where a report came from."""

    SENDGRID = "sendgrid"  # SendGrid's signed event webhook
    SYNC = "sync"  # SendGrid's suppression lists, read with our API key
    DSN = "dsn"  # a delivery status notification in the bounce mailbox
    ARF = "arf"  # a complaint (feedback loop) report in the bounce mailbox
    MAILTO = "mailto"  # a mail to the List-Unsubscribe mailto: address


class Proof(StrEnum):
    """What ties a report to the person it names; it decides whether the report may act.

    The bounce mailbox is a public address: anyone can mail it a report naming anyone.
    Only our own seals, or a provider that authenticated itself, say whom a report is about.
    """

    SEALED = "sealed"  # the person (and issue) from an id we sealed: VERP, mailto: address
    MESSAGE_ID = "message-id"  # our sealed Message-ID quoted: acts if the ledger sent it them
    PROVIDER = "provider"  # a signed webhook or an API we called; its id must match the address
    ADDRESS = "address"  # nothing but an address, in a mail anyone could send


class DeliveryEvent(NamedTuple):
    """One report about one message or address, in our words, whatever carried it.

    A tuple, like Recipient: a webhook batch makes a thousand, and a frozen dataclass
    costs several times as much to build.
    """

    type: EventType
    source: Source
    proof: Proof
    event_id: str | None  # the provider's id, or one stable for the report: replays are duplicates
    email: str | None  # the address the report names, if any
    subscriber_id: int | None = None
    issue_id: int | None = None
    message_nonce: str | None = None  # a sealed Message-ID's issue, matched in the ledger
    at: dt.datetime | None = None
    url: str | None = None
    suppress: SubscriberStatus | None = None  # the status it puts on the person, if any
    data: Mapping[str, Any] | None = None  # what else it said worth keeping (a bounce's reason)
    note: str = ""  # why the proof is no better (a VERP token that does not open, ...)


@dataclass(frozen=True)
class Issue:
    """A parsed issue file: metadata plus its Markdown body."""

    slug: str
    subject: str
    preheader: str
    date: str
    body: str
    source: str  # the path it came from, for messages
    send_at: dt.datetime | None = None  # front matter; naive means the timezone setting's
    archive: bool = True  # front matter `archive: false` keeps it off the web
    line_offset: int = 0  # lines of front matter before the body, for messages
    audience: str | None = None  # front matter: who it goes to (an audience expression)
    language: str = ""  # its language: an edition's, from the file name; "" the list's
    edition: str = ""  # an edition's tag (X.en.md: "en"); "" for the main file


class Recipient(NamedTuple):
    """One person an issue goes to, as the sender needs them.

    `key` tells recipients apart in an Outcome: the subscriber id for ledger sends, a
    negative number for ad-hoc ones (test copies, confirmations). `nonce` is the
    subscriber's random link secret, bound into every token. A tuple: a million are made
    per million sent, and a frozen dataclass costs four times as much to build.
    """

    key: int
    email: str
    name: str = ""
    nonce: int = 0

    @property
    def subscriber_id(self) -> int:
        return self.key


@dataclass
class Outcome:
    """What a provider did with a group of recipients, by Recipient.key."""

    sent: dict[int, str] = field(default_factory=dict)  # key -> provider message id
    failed: dict[int, str] = field(default_factory=dict)  # key -> reason (permanent)
    bounced: set[int] = field(default_factory=set)  # failed because the address is dead
    ambiguous: dict[int, str] = field(default_factory=dict)  # may have gone out


class Fields(NamedTuple):
    """One recipient's placeholder values, as plain text (the name cleaned to one line)."""

    unsubscribe_url: str
    email: str
    name: str


FIELDS = Fields._fields  # the per-recipient placeholder fields
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058's List-Unsubscribe-Post value


class Mailing(Protocol):
    """Everything a provider needs to send one issue (or one ad-hoc mail), flat.

    The delivery layer builds it; providers only read it. Templates carry placeholders
    that `fields` fills per recipient (SendGrid sends the template once per request).
    Hashable by identity, as it never changes: a provider may keep what it derives once.
    """

    slug: str
    issue_id: int
    adhoc: bool  # outside the ledger: each message gets its own random Message-ID
    subject: str
    from_email: str
    from_name: str
    reply_to: str
    domain: str  # of from_email: Message-IDs end in it
    issue_headers: Mapping[str, str]  # the same for every recipient (List-Id, ...)
    html_fields: frozenset[str]  # placeholder fields the HTML uses
    text_fields: frozenset[str]

    def __hash__(self) -> int: ...

    def html_template(self, keys: Mapping[str, str]) -> str: ...

    def text_template(self, keys: Mapping[str, str]) -> str: ...

    def fields(self, r: Recipient) -> Fields:
        """One recipient's placeholder values, as plain text: nothing HTML-escaped."""
        ...

    def list_headers(self, unsubscribe_url: str, r: Recipient | None = None) -> dict[str, str]:
        """List-Unsubscribe and List-Unsubscribe-Post, made in one place for every provider."""
        ...

    def list_unsubscribe(self, unsubscribe_url: str, r: Recipient) -> str:
        """The List-Unsubscribe value alone (List-Unsubscribe-Post is the same for all)."""
        ...

    def message_id(self, r: Recipient) -> str: ...

    def envelope_sender(self, r: Recipient) -> str:
        """The SMTP envelope sender (Return-Path) for one message."""
        ...

    def message(self, r: Recipient) -> bytes:
        """The whole RFC 5322 message for one recipient; every line ends in CRLF and no
        CR or LF stands alone (SMTP sends it as it is: a bare LF is a smuggling risk)."""
        ...


@dataclass(frozen=True)
class Snapshot:
    """An issue as it is sent: what the ledger pins, so a resume sends the same thing
    without the Markdown file or the templates."""

    subject: str
    preheader: str
    html: str  # with placeholder tokens for the per-recipient fields
    text: str
    headers: dict[str, str]  # issue-level headers (List-Id, ...)
    source: str  # the issue file, relative to the project where it lies inside it
    # The web version (archive): the same email, nobody's address or token in it.
    web_html: str = ""
    archive: bool = True
    date: str = ""  # the issue's own date, as the archive shows it
    language: str = ""  # the language it is written in
    # The other language editions, each a Snapshot of its own (headers shared): a reader
    # gets the one of their language, or this one.
    editions: tuple[Snapshot, ...] = ()
    links: tuple[str, ...] = ()  # its article links, numbered at the pin (count_clicks)

    @property
    def content_hash(self) -> str:
        import hashlib
        import json

        data: list[object] = [
            self.subject,
            self.preheader,
            self.html,
            self.text,
            sorted(self.headers.items()),
        ]
        if self.editions:  # an issue without editions hashes as it always did
            data += [[e.language, e.content_hash] for e in self.editions]
        return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()

    def edition(self, language: str) -> Snapshot:
        """The edition in `language` ("" or an unknown tag: this main one)."""
        for e in self.editions:
            if e.language == language:
                return e
        return self


@dataclass(frozen=True)
class FeedSource:
    """A feed `mailer draft` reads, declared under [[sources]] in mailer.toml."""

    url: str
    name: str = ""  # shown as the section's heading; the feed's own title otherwise
    topic: str = ""  # a declared topic the section belongs to


@dataclass(frozen=True)
class Topic:
    """A topic readers may choose, declared under [topics] in mailer.toml."""

    key: str
    names: tuple[tuple[str, str], ...] = ()  # (language tag, display name)

    def name(self, language: str) -> str:
        """Its name in `language`, else in a broader or narrower form of it, else its first."""
        for tag, name in self.names:
            if tag == language:
                return name
        base = language.split("-")[0]
        for tag, name in self.names:
            if tag.split("-")[0] == base:
                return name
        return self.names[0][1] if self.names else self.key
