"""An honest rate limit, driven by a fake clock: no bursts past the bucket, no capacity
taken by idle workers, no wait after the last message, any window within 5 %."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from mailer.config import load_settings
from mailer.models import Mailing, Outcome
from mailer.providers import make_provider
from mailer.sending import send as core
from mailer.sending.engine import Sender
from mailer.sending.ratelimit import TokenBucket
from mailer.store import open_store
from tests.conftest import Cli, write


class FakeClock:
    """Time that moves only when someone sleeps, to the deadline they sleep until: it never
    runs ahead of the latest deadline anyone was given."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep_until(self, deadline: float, stop: threading.Event | None = None) -> bool:
        with self.lock:
            self.now = max(self.now, deadline)
        return bool(stop and stop.is_set())


def windows_ok(times: list[float], rate: float, window: float, burst: int) -> None:
    """Over any `window` seconds, at most rate × window (+ the burst) messages, within 5 %."""
    for i, start in enumerate(times):
        inside = sum(1 for t in times[i:] if t < start + window)
        assert inside <= (rate * window) * 1.05 + burst, (start, inside)


def test_bucket_spaces_messages_across_threads() -> None:
    clock = FakeClock()
    bucket = TokenBucket(50, burst=1, clock=clock, sleep_until=clock.sleep_until)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(250):
            departure = bucket.reserve(1)  # when this message may leave
            clock.sleep_until(departure)
            with lock:
                sent.append(departure)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent.sort()
    assert len(sent) == 1000
    windows_ok(sent, 50, 10.0, 1)
    assert sent[-1] - sent[0] >= (1000 - 1) / 50 * 0.99  # never faster than the rate


def test_refunds_give_capacity_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, burst=5, clock=clock, sleep_until=clock.sleep_until)
    assert bucket.reserve(5) == 1000.0  # the burst: at once
    bucket.refund(5)  # no work found: the reservation goes back
    assert bucket.reserve(5) == 1000.0
    assert bucket.reserve(1) == 1000.1  # now it is spent: the next one waits 1/rate


def test_a_rate_limited_send_is_spaced_and_ends_with_its_last_message(
    sqlite_project: Path,
) -> None:
    run = Cli(sqlite_project)
    path = write(
        sqlite_project / "l.csv", "email\n" + "".join(f"r{i:04d}@example.com\n" for i in range(600))
    )
    assert run("subscribers", "import", str(path)).exit_code == 0
    settings = load_settings(
        sqlite_project, {"rate_limit": 50, "concurrency": 1, "batch_size": 100}
    )
    plan = core.plan(settings, sqlite_project / "issues" / "2026-11-20-weekly.md")
    assert plan.snapshot is not None
    clock = FakeClock()
    sent: list[float] = []
    lock = threading.Lock()
    provider = make_provider(settings)

    class Recording:
        name, group_size, batched = "outbox", provider.group_size, False

        def session(self):  # type: ignore[no-untyped-def]
            inner = provider.session()

            class S:
                def send(self, mailing: Mailing, group):  # type: ignore[no-untyped-def]
                    out: Outcome = inner.send(mailing, group)
                    with lock:
                        sent.extend([clock()] * len(out.sent))
                    return out

                def close(self) -> None:
                    inner.close()

            return S()

    with open_store(settings) as store:
        pinned = store.pins.pin(plan.slug, plan.snapshot, settings.batch_size)
        bucket = TokenBucket(50, burst=1, clock=clock, sleep_until=clock.sleep_until)
        sender = Sender(
            store.ledger, Recording(), core.mailing_for(settings, pinned), settings, bucket=bucket
        )
        result = sender.run()
    sent.sort()
    assert result.sent == 600 and len(sent) == 600
    windows_ok(sent, 50, 10.0, 1)
    # one message at a time, never a group at once: 1/rate apart
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 1 / 50 - 1e-9
    # the run ends when the last message leaves: no idle worker waits after it
    assert result.elapsed <= (sent[-1] - 1000.0) + 1 / 50 + 1e-9
    assert sent[-1] - sent[0] >= (600 - 1) / 50 * 0.99


def test_idle_workers_take_no_capacity(sqlite_project: Path) -> None:
    """Four workers, three messages at 1/s: the last leaves at 2 s and the run ends then.
    Workers that find no batch must not have reserved (and waited for) any capacity."""
    run = Cli(sqlite_project)
    for e in ("a@example.com", "b@example.com", "c@example.com"):
        run("subscribers", "add", e)
    settings = load_settings(sqlite_project, {"rate_limit": 1, "concurrency": 4, "batch_size": 1})
    plan = core.plan(settings, sqlite_project / "issues" / "2026-11-20-weekly.md")
    assert plan.snapshot is not None
    clock = FakeClock()
    with open_store(settings) as store:
        pinned = store.pins.pin(plan.slug, plan.snapshot, 1)
        bucket = TokenBucket(1, burst=1, clock=clock, sleep_until=clock.sleep_until)
        provider = make_provider(settings)
        result = Sender(
            store.ledger, provider, core.mailing_for(settings, pinned), settings, bucket=bucket
        ).run()
    assert result.sent == 3 and result.elapsed == 2.0
