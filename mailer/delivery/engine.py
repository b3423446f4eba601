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
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailer.config import Settings
from mailer.delivery.ratelimit import TokenBucket
from mailer.errors import DeliveryError
from mailer.models import Mailing, Outcome, Recipient

Progress = Callable[[Outcome], None]
Claim = Any  # the ledger's own handle on a claimed batch; the engine only passes it back


class Session(Protocol):
    def send(self, mailing: Mailing, group: Sequence[Recipient]) -> Outcome: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str
    group_size: int  # recipients given to one Session.send call

    def session(self) -> Session: ...


class LedgerPort(Protocol):
    def new_owner(self) -> str: ...

    def recover(self, issue_id: int) -> int: ...

    def claim_group(
        self, issue_id: int, owner: str, limit: int, version: int
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
    ) -> None:
        self.ledger = ledger
        self.provider = provider
        self.mailing = mailing
        self.version = version
        self.workers = settings.concurrency
        self.bucket = TokenBucket(settings.rate_limit)
        self.on_progress = on_progress
        self.owner = ledger.new_owner()
        self.stop = threading.Event()
        self.result = RunResult()
        self.lock = threading.Lock()

    def run(self) -> RunResult:
        start = time.monotonic()
        self.ledger.recover(self.mailing.issue_id)
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.workers)]
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
        self.result.elapsed = time.monotonic() - start
        return self.result

    def halt(self, reason: str) -> None:
        with self.lock:
            if not self.result.stopped:
                self.result.stopped = reason
        self.stop.set()

    def _worker(self) -> None:
        session: Session | None = None
        size = self.provider.group_size
        try:
            session = self.provider.session()
            while not self.stop.is_set():
                # Wait for the rate limit before marking anyone requesting: a sender killed
                # while it waits must not leave a group ambiguous that never left.
                self.bucket.acquire(size, self.stop)
                if self.stop.is_set():
                    return
                got = self.ledger.claim_group(self.mailing.issue_id, self.owner, size, self.version)
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

    def _batch(self, session: Session, claim: Claim, group: list[Recipient], more: bool) -> bool:
        """Send a claimed batch group by group. True when the last record settled it."""
        size = self.provider.group_size
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
            self.bucket.acquire(size, self.stop)
            if self.stop.is_set():
                return False
            group, more = self.ledger.take_group(claim, size)
        return False

    def _send(self, session: Session, claim: Claim, group: list[Recipient]) -> Outcome:
        try:
            return session.send(self.mailing, group)
        except DeliveryError:
            # Refused, unreachable, or failed here before sending: nothing of it went out.
            self.ledger.revert(claim, group)
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
