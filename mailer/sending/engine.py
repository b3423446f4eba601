"""The send engine: workers claim batches from the ledger and hand groups to a provider.

Exactly-once lives in the ledger's protocol (see store/ledger.py); this module keeps to it:
take (marks requesting, committed) → provider → record. When a provider says it certainly
took nothing (a DeliveryError: refused, transient, or local), the group is reverted to
pending; anything the provider could not place makes the group ambiguous.

The engine declares what it needs from a provider and from the ledger as Protocols;
they implement them without importing this module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailer import heap
from mailer.config import Settings
from mailer.errors import DeliveryError
from mailer.models import Mailing, Outcome, Recipient
from mailer.sending.ratelimit import TokenBucket

Progress = Callable[[Outcome], None]
# The ledger's own handle on a claimed batch: the engine passes it back, and reads only
# its `edition` (which language edition its recipients get).
Claim = Any


class Session(Protocol):
    def send(self, mailing: Mailing, group: Sequence[Recipient]) -> Outcome: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str
    group_size: int  # recipients given to one Session.send call
    batched: bool  # a group goes in one request (SendGrid): rate-limited by the group

    def session(self) -> Session: ...


class LedgerPort(Protocol):
    def new_owner(self) -> str: ...

    def recover(self, issue_id: int) -> int: ...

    def claim(
        self, issue_id: int, owner: str, version: int, seq: int | None = None
    ) -> Claim | None: ...

    def claim_group(
        self, issue_id: int, owner: str, limit: int, version: int, seq: int | None = None
    ) -> tuple[Claim, list[Recipient], bool] | None: ...

    def take_group(self, claim: Claim, limit: int) -> tuple[list[Recipient], bool]: ...

    def record(
        self,
        claim: Claim,
        outcome: Outcome,
        batch_message_id: str | None = None,
        group_size: int = 0,
        settle: bool = False,
    ) -> None: ...

    def revert(self, claim: Claim, group: Iterable[Recipient]) -> None: ...

    def release(self, claim: Claim, error: str | None = None) -> None: ...


@dataclass
class RunResult:
    sent: int = 0
    failed: int = 0
    ambiguous: int = 0
    elapsed: float = 0.0
    stopped: str = ""  # why the run stopped early, if it did
    errors: list[str] = field(default_factory=list)


class Sender:
    def __init__(
        self,
        ledger: LedgerPort,
        provider: Provider,
        mailing: Mailing,
        settings: Settings,
        version: int = 1,
        on_progress: Progress | None = None,
        bucket: TokenBucket | None = None,
        only_batch: int | None = None,
        editions: Mapping[str, Mailing] | None = None,
    ) -> None:
        """`only_batch`: send that batch of the issue and no other (a welcome's, of one).
        `editions`: the issue's other language editions by tag; a batch names its own."""
        self.ledger = ledger
        self.provider = provider
        self.mailing = mailing
        self.editions = dict(editions or {})
        self.version = version
        self.workers = settings.concurrency
        self.bucket = bucket or TokenBucket(settings.rate_limit, settings.rate_burst)
        # Rate-limited, a provider that sends message by message gets groups of one, so
        # messages leave spaced rather than a group at once.
        self.size = provider.group_size
        if self.bucket.limited and not provider.batched:
            self.size = 1
        self.on_progress = on_progress
        self.only_batch = only_batch
        self.owner = ledger.new_owner()
        self.stop = threading.Event()
        self.result = RunResult()
        self.lock = threading.Lock()

    def run(self) -> RunResult:
        start = self.bucket.clock()
        self.ledger.recover(self.mailing.issue_id)
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
        with heap.frozen():
            for t in threads:
                t.start()
            try:
                for t in threads:
                    while t.is_alive():
                        t.join(0.2)
            except KeyboardInterrupt:
                self.halt("interrupted; run the same command again to resume")
                for t in threads:
                    t.join()
        self.result.elapsed = self.bucket.clock() - start
        return self.result

    def halt(self, reason: str) -> None:
        with self.lock:
            if not self.result.stopped:
                self.result.stopped = reason
        self.stop.set()

    def _worker(self) -> None:
        session: Session | None = None
        try:
            session = self.provider.session()
            while not self.stop.is_set():
                got = self._claim()
                if got is None:
                    return
                claim, group, more = got
                settled, error = False, None
                try:
                    settled = self._batch(session, claim, group, more)
                except Exception as e:
                    error = str(e)
                    raise
                finally:
                    if not settled:
                        self.ledger.release(claim, error)
        except DeliveryError as e:
            self.halt(str(e))
        except Exception as e:  # a bug or a dead database: stop everyone, say what happened
            self.halt(f"{type(e).__name__}: {e}")
        finally:
            if session is not None:
                session.close()

    def _claim(self) -> tuple[Claim, list[Recipient], bool] | None:
        """The next batch and its first group, or None when none is left (or stopping).

        Unlimited: one transaction. Rate-limited: the batch is claimed first (nobody marked
        requesting), then the wait, then the group is taken: a worker that finds no work
        takes no capacity, and a sender killed while it waits leaves nothing ambiguous.
        """
        issue_id = self.mailing.issue_id
        if not self.bucket.limited:
            return self.ledger.claim_group(
                issue_id, self.owner, self.size, self.version, self.only_batch
            )
        claim = self.ledger.claim(issue_id, self.owner, self.version, self.only_batch)
        if claim is None:
            return None
        taken = self._paced_take(claim)
        if taken is None:
            self.ledger.release(claim)
            return None
        return claim, *taken

    def _paced_take(self, claim: Claim) -> tuple[list[Recipient], bool] | None:
        """Wait for the rate limit, then mark the next group requesting; None if stopped."""
        if self.bucket.acquire(self.size, self.stop):
            return None
        group, more = self.ledger.take_group(claim, self.size)
        self.bucket.refund(self.size - len(group))
        return group, more

    def _batch(self, session: Session, claim: Claim, group: list[Recipient], more: bool) -> bool:
        """Send a claimed batch group by group. True when the last record settled it."""
        while group:
            outcome = self._send(session, claim, group)
            self.ledger.record(
                claim, outcome, _batch_message_id(outcome), len(group), settle=not more
            )
            self._count(outcome)
            if outcome.ambiguous:
                self.halt("the provider did not answer; its recipients are listed as ambiguous")
            if not more:
                return True
            if self.stop.is_set():
                return False
            taken = self._paced_take(claim)
            if taken is None:
                return False
            group, more = taken
        return False

    def _send(self, session: Session, claim: Claim, group: list[Recipient]) -> Outcome:
        mailing = self.editions.get(claim.edition, self.mailing)
        try:
            return session.send(mailing, group)
        except DeliveryError as e:
            # Refused, unreachable, or failed here before sending: nothing of it went out,
            # but for what the provider says it did with part of the group before failing.
            done = e.partial if isinstance(e.partial, Outcome) else Outcome()
            handled = {*done.sent, *done.failed, *done.ambiguous}
            if handled:
                self.ledger.record(claim, done, None, len(group))
                self._count(done)
            self.ledger.revert(claim, [r for r in group if r.key not in handled])
            raise
        except Exception as e:
            # A provider classifies what it knows; an error it could not place may have
            # come after bytes left, so the safe record is "ambiguous".
            return Outcome(ambiguous={r.subscriber_id: f"{type(e).__name__}: {e}" for r in group})

    def _count(self, outcome: Outcome) -> None:
        with self.lock:
            self.result.sent += len(outcome.sent)
            self.result.failed += len(outcome.failed)
            self.result.ambiguous += len(outcome.ambiguous)
        if self.on_progress is not None:
            self.on_progress(outcome)


def _batch_message_id(outcome: Outcome) -> str | None:
    ids = set(outcome.sent.values())
    return ids.pop() if len(ids) == 1 else None
