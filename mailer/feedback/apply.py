"""The one function that applies reports, whatever carried them.

A report acts on a person only with proof it concerns a message we sent them (see
`models.Proof`): an id we sealed, our sealed Message-ID matched in the ledger, or a
provider that authenticated itself and whose id agrees with the address. A report by
mail that names nothing but an address proves nothing and is not applied, unless the
owner opted into address matching (`bounce_match_address`).

A batch costs a few statements whatever its size: one look up of the people and issues
it names, one insert of its events (replays dropped by the unique key); then status
changes for the few events that carry one, and settling ambiguous sends for the issues
that have any. Most events of a webhook batch are plain (delivered, opened...): they are
counted, and only the others get a `Verdict` each.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

import sqlalchemy as sa

from mailer import addresses
from mailer.models import DeliveryEvent, EventType, Proof, SubscriberStatus
from mailer.store import events as store
from mailer.store.subscribers import now

if TYPE_CHECKING:
    from mailer.config import Settings

UNPROVEN_ADDRESS = "it names only an address; nothing proves it concerns a message we sent"
UNPROVEN_MESSAGE_ID = "the Message-ID it quotes is not one we sent to that person"
OTHER_ADDRESS = "it names another address than the one the quoted message went to"
# Provider events that say a message was taken: an ambiguous send to that person was sent.
TAKEN = frozenset({EventType.PROCESSED, EventType.DELIVERED})


class Outcome(StrEnum):
    RECORDED = "recorded"  # noted (delivered, opened...): nothing to change
    SUPPRESSED = "suppressed"  # the person's status changed (Verdict.status)
    SOFT = "soft"  # a soft bounce, counted
    UNCHANGED = "unchanged"  # the status policy kept the person's status
    UNKNOWN = "unknown"  # recorded; nobody on the list it concerns
    DUPLICATE = "duplicate"  # recorded before
    UNPROVEN = "unproven"  # not applied: nothing proves whom it concerns (Verdict.reason)
    REJECTED = "rejected"  # the database would not store it


# What a report that was recorded and acted on (or had nothing to act on) comes to.
APPLIED = frozenset({Outcome.RECORDED, Outcome.SUPPRESSED, Outcome.SOFT, Outcome.UNCHANGED})


@dataclass(frozen=True)
class Rules:
    soft_bounce_limit: int = 3
    trust_addresses: bool = False  # bounce_match_address: address-only reports act

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(settings.soft_bounce_limit, settings.bounce_match_address)


class Verdict(NamedTuple):
    """What one report did, for every outcome but RECORDED (which only counts)."""

    event: DeliveryEvent
    outcome: Outcome
    subscriber_id: int | None = None
    status: SubscriberStatus | None = None  # the new status, when it changed
    reason: str = ""  # why it proved nothing
    address: str | None = None  # the person's, as the list knows it


@dataclass
class Applied:
    """What a batch came to: a count of every outcome, and the verdicts worth reading."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    verdicts: list[Verdict] = field(default_factory=list)

    def add(self, verdict: Verdict) -> None:
        self.counts[verdict.outcome] += 1
        self.verdicts.append(verdict)

    def extend(self, other: Applied) -> None:
        self.counts.update(other.counts)
        self.verdicts += other.verdicts

    def changes(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status is not None]


class _Target(NamedTuple):
    subscriber_id: int | None
    issue_id: int | None
    address: str | None = None


@dataclass
class _Known:
    """What the database says about the people and issues one batch names."""

    keys: dict[int, str]  # subscriber id -> address key
    ids: dict[str, int]  # address key -> subscriber id, for reports that need it
    issues: set[int]
    nonces: dict[str, int]  # Message-ID nonce -> issue id
    agreed: set[int]  # positions of the provider's events whose id and address agree


def apply(conn: sa.Connection, batch: Sequence[DeliveryEvent], rules: Rules) -> Applied:
    """Record and act on a batch of reports in the caller's transaction."""
    known = _look_up(conn, batch, rules)
    applied = Applied()
    new: list[tuple[DeliveryEvent, _Target]] = []
    seen: set[str] = set()
    for at, e in enumerate(batch):
        target, unproven = _resolve(conn, at, e, known, rules)
        if unproven:
            applied.add(Verdict(e, Outcome.UNPROVEN, reason=unproven))
        elif e.event_id is not None and e.event_id in seen:  # twice in one batch
            applied.add(_duplicate(e, target))
        else:
            if e.event_id is not None:
                seen.add(e.event_id)
            new.append((e, target))
    before = store.record(conn, [_row(e, target) for e, target in new])
    taken: dict[int, set[int]] = defaultdict(set)
    for e, target in new:
        if e.event_id in before:  # recorded by an earlier delivery of the same event
            applied.add(_duplicate(e, target))
        elif target.subscriber_id is None:
            applied.add(Verdict(e, Outcome.UNKNOWN))
        elif e.suppress is not None or e.type is EventType.SOFT_BOUNCED:
            applied.add(_act(conn, e, target, rules))
        else:
            applied.counts[Outcome.RECORDED] += 1
            if e.type in TAKEN and target.issue_id is not None:
                taken[target.issue_id].add(target.subscriber_id)
    for issue_id, people in taken.items():
        store.settle(conn, issue_id, people, "the provider confirmed it took the message")
    return applied


def _duplicate(e: DeliveryEvent, target: _Target) -> Verdict:
    return Verdict(e, Outcome.DUPLICATE, target.subscriber_id, address=target.address)


def _look_up(conn: sa.Connection, batch: Sequence[DeliveryEvent], rules: Rules) -> _Known:
    keys = store.keys_by_id(conn, {e.subscriber_id for e in batch if e.subscriber_id})
    # Addresses are looked up only for reports that go by address: a provider's event
    # whose id names the person it also names by address (nearly all) needs none.
    agreed, wanted = set(), set()
    for at, e in enumerate(batch):
        sid = e.subscriber_id
        if (
            e.proof is Proof.PROVIDER
            and sid is not None
            and sid in keys
            and _agrees(e.email, keys[sid])
        ):
            agreed.add(at)
            continue
        if e.proof is Proof.PROVIDER or (e.proof is Proof.ADDRESS and rules.trust_addresses):
            key = _key(e.email)
            if key is not None:
                wanted.add(key)
    return _Known(
        keys=keys,
        ids=store.ids_by_key(conn, wanted),
        issues=store.existing_issues(conn, {e.issue_id for e in batch if e.issue_id}),
        nonces=store.issues_by_nonce(conn, {e.message_nonce for e in batch if e.message_nonce}),
        agreed=agreed,
    )


def _resolve(
    conn: sa.Connection, at: int, e: DeliveryEvent, known: _Known, rules: Rules
) -> tuple[_Target, str]:
    """Whom and which issue the report at position `at` concerns, or why it proves nothing."""
    sid = e.subscriber_id
    issue = e.issue_id if e.issue_id in known.issues else None
    if e.proof is Proof.PROVIDER:
        if at in known.agreed:
            return _Target(sid, issue, known.keys[sid]), ""  # type: ignore[index]
        return _by_address(e.email, issue, known), ""
    if e.proof is Proof.SEALED:
        if sid is not None and sid in known.keys:
            return _Target(sid, issue, known.keys[sid]), ""
        return _Target(None, issue), ""
    if e.proof is Proof.MESSAGE_ID:
        issue = known.nonces.get(e.message_nonce or "")
        if sid is None or issue is None or not store.was_sent(conn, issue, sid):
            return _Target(None, None), UNPROVEN_MESSAGE_ID
        if not _agrees(e.email, known.keys.get(sid)):
            return _Target(None, None), OTHER_ADDRESS
        return _Target(sid, issue, known.keys.get(sid)), ""
    if not rules.trust_addresses:
        return _Target(None, None), e.note or UNPROVEN_ADDRESS
    return _by_address(e.email, issue, known), ""


def _by_address(email: str | None, issue: int | None, known: _Known) -> _Target:
    key = _key(email)
    sid = known.ids.get(key) if key else None
    return _Target(sid, issue, key if sid is not None else None)


def _agrees(email: str | None, key: str | None) -> bool:
    """Does a report's address (if it gives one) name the person with this address key?
    The address as sent is the key itself, lower-cased, nearly always: checked first."""
    if not email:
        return True
    if key is None:
        return False
    return email.strip().lower() == key or _key(email) == key


def _act(conn: sa.Connection, e: DeliveryEvent, target: _Target, rules: Rules) -> Verdict:
    """What a report that suppresses (or counts as a soft bounce) did to its person."""
    sid, who = target.subscriber_id, target.address
    assert sid is not None
    if e.suppress is not None:
        if store.suppress(conn, sid, e.suppress, f"{e.source.value}: {e.type.value}"):
            return Verdict(e, Outcome.SUPPRESSED, sid, e.suppress, address=who)
        return Verdict(e, Outcome.UNCHANGED, sid, address=who)
    limit = rules.soft_bounce_limit
    if store.soft_streak(conn, sid, limit) and store.suppress(
        conn,
        sid,
        SubscriberStatus.BOUNCED,
        f"{e.source.value}: soft bounces on {limit} issues in a row",
    ):
        return Verdict(e, Outcome.SUPPRESSED, sid, SubscriberStatus.BOUNCED, address=who)
    return Verdict(e, Outcome.SOFT, sid, address=who)


def _row(e: DeliveryEvent, target: _Target) -> tuple[object, ...]:
    """The event as store.record takes it (store.COLUMNS)."""
    return (e.event_id, target.issue_id, target.subscriber_id, e.type, e.at or now(), e.url, e.data)


def _key(email: str | None) -> str | None:
    if not email:
        return None
    try:
        return addresses.key(addresses.normalize(email))
    except addresses.InvalidAddress:
        return None


def _refused(e: Exception) -> bool:
    """The database would not store this batch (a value it cannot take), as opposed to a
    database that is away, which must reach the caller (503, SendGrid retries)."""
    if isinstance(e, sa.exc.DataError | sa.exc.IntegrityError):
        return True
    return isinstance(e, sa.exc.StatementError) and not isinstance(e, sa.exc.DBAPIError)


def apply_batch(engine: sa.Engine, batch: Sequence[DeliveryEvent], rules: Rules) -> Applied:
    """A batch in one transaction; if the database refuses it, event by event, so one
    event it cannot store costs only itself."""
    try:
        with engine.begin() as conn:
            return apply(conn, batch, rules)
    except sa.exc.SQLAlchemyError as e:
        if not _refused(e):
            raise
    applied = Applied()
    with engine.begin() as conn:
        for event in batch:
            try:
                with conn.begin_nested():
                    applied.extend(apply(conn, [event], rules))
            except sa.exc.SQLAlchemyError as e:
                if not _refused(e):
                    raise
                applied.add(Verdict(event, Outcome.REJECTED))
    return applied
