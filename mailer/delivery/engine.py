"""The send engine: workers claim batches from the ledger and hand groups to a provider.

Exactly-once lives in the ledger's protocol (see store/ledger.py); this module keeps to it:
take (marks requesting, committed) → provider → record. When a provider says it certainly
took nothing, the group is reverted to pending; anything unexpected makes it ambiguous.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailer.config import Settings
from mailer.delivery.ratelimit import TokenBucket
from mailer.errors import DeliveryError
from mailer.models import Outcome, Recipient
from mailer.providers import Job, Provider, Session, TransientError
from mailer.store.ledger import Claim, Ledger, new_owner

Progress = Callable[[Outcome], None]


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
        ledger: Ledger,
        provider: Provider,
        job: Job,
        settings: Settings,
        on_progress: Progress | None = None,
    ) -> None:
        self.ledger = ledger
        self.provider = provider
        self.job = job
        self.workers = settings.concurrency
        self.bucket = TokenBucket(settings.rate_limit)
        self.on_progress = on_progress
        self.owner = new_owner()
        self.stop = threading.Event()
        self.result = RunResult()
        self.lock = threading.Lock()

    def run(self) -> RunResult:
        start = time.monotonic()
        self.ledger.recover(self.job.issue_id)
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
                got = self.ledger.claim_group(self.job.issue_id, self.owner, size)
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
            return session.send(self.job, group)
        except (TransientError, DeliveryError):
            # The provider said no, or we never reached it: nothing of this group went out.
            self.ledger.revert(claim, group)
            raise
        except Exception as e:
            # We cannot tell what reached the provider: the safe record is "ambiguous".
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
