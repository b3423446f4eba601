"""The outbox: one RFC 5322 .eml file per recipient, written atomically. The default."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from mailer.config import Settings
from mailer.models import Outcome, Recipient
from mailer.providers import Job

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


class OutboxProvider:
    name = "outbox"
    group_size = 100

    def __init__(self, settings: Settings) -> None:
        self.root = settings.path(settings.outbox_dir)

    def session(self) -> OutboxSession:
        return OutboxSession(self.root)


class OutboxSession:
    def __init__(self, root: Path) -> None:
        self.root = root

    def send(self, job: Job, group: Sequence[Recipient]) -> Outcome:
        folder = self.root / job.slug
        folder.mkdir(parents=True, exist_ok=True)
        outcome = Outcome()
        for r in group:
            mid = None
            name = f"{r.subscriber_id:08d}-{_UNSAFE.sub('_', r.email)}.eml"
            if job.adhoc:
                mid = f"<test.{time.time_ns()}.{r.subscriber_id}@{job.personalizer.factory.domain}>"
                name = f"test-{time.strftime('%Y%m%d-%H%M%S')}-{_UNSAFE.sub('_', r.email)}.eml"
            data = job.personalizer.message(r, message_id=mid)
            _write_atomic(folder / name, data)
            outcome.sent[r.subscriber_id] = name
        return outcome

    def close(self) -> None:
        pass


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
