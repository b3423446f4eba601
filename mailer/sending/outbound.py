"""Confirmation mails the web pages promised, sent from the mail queue after the response.

`mailer serve` runs `Outbound.run` in a thread: it drains the queue when a page adds to
it, and every few seconds for retries. Whatever the address, the page did the same one
INSERT; whether a mail goes out is decided here, where nobody is waiting on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mailer.config import Settings
from mailer.errors import MailerError
from mailer.models import SubscriberStatus
from mailer.sending.confirm import send_confirmation, send_preferences_link
from mailer.store import Store
from mailer.store.owners import new_owner
from mailer.store.queue import Job
from mailer.store.subscribers import Subscriber
from mailer.tokens import confirm_signer, unsubscribe_signer

log = logging.getLogger("mailer.outbound")
POLL = 5.0  # seconds between looks for retries that came due

# Who a confirmation goes to. A sign-up on the public form (a new consent): anyone but an
# active address (nothing to confirm); bounced and complained people come back only this
# way. The "Subscribe again" button on the page of an old email's link: only someone who
# unsubscribed; never a bounced or complained address (whoever holds the email could press it).
FORM_MAY_CONFIRM = frozenset(
    {
        SubscriberStatus.PENDING,
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED,
        SubscriberStatus.COMPLAINED,
    }
)
MAY_RESUBSCRIBE = frozenset({SubscriberStatus.UNSUBSCRIBED})


class Outbound:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.signer = confirm_signer(settings.secret_key)
        self.links = unsubscribe_signer(settings.secret_key)
        self.lock = threading.Lock()  # one drain at a time in this process
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.owner = new_owner()

    def notify(self) -> None:
        self.wake.set()

    def drain(self) -> int:
        """Send everything due now; how many queued mails were handled."""
        handled = 0
        with self.lock:
            while not self.stopping.is_set() and (job := self.store.queue.claim(self.owner)):
                try:
                    self._one(job)
                except Exception as e:  # one job's surprise must not strand the others
                    log.error("mail queue: %s", type(e).__name__)
                    self.store.queue.later(job, type(e).__name__)
                handled += 1
        return handled

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()  # before draining: a page that queues meanwhile wakes us again
            try:
                self.drain()
            except Exception as e:  # the database is away: try again at the next wake
                log.error("mail queue: %s", type(e).__name__)
            self.wake.wait(POLL)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _one(self, job: Job) -> None:
        queue = self.store.queue
        try:
            if job.kind == "welcome" and job.subscriber_id is not None:
                from mailer.sending.welcome import welcome

                welcome(self.settings, self.store, job.subscriber_id)
                queue.done(job)
                return
            if job.kind == "link":
                self._link(job)
                queue.done(job)
                return
            s = self._subscriber(job)
            if s is not None:
                self._confirm(s, job.choices, job.id)
        except MailerError as e:
            if not queue.later(job, str(e)):
                log.warning("mail queue: gave up on a %s mail after many attempts", job.kind)
            return
        queue.done(job)

    def _link(self, job: Job) -> None:
        """A preference-page link, to an address on the list (any status: an unsubscribed
        reader may want to come back or be erased), at most one an hour."""
        s = self.store.subscribers.get(job.email) if job.email else None
        if s is None or not self.store.subscribers.request_link(s.id, job.id):
            return
        token = self.links.sign(s.id, s.nonce, 0)
        url = f"{self.settings.base_url.rstrip('/')}/u/{token}/preferences"
        try:
            send_preferences_link(self.settings, s.email, s.name, url, s.language or "")
        except MailerError:
            self.store.subscribers.link_not_sent(s.id)
            raise

    def _subscriber(self, job: Job) -> Subscriber | None:
        subscribers = self.store.subscribers
        if job.kind == "signup" and job.email:
            s, _ = subscribers.add(
                job.email,
                job.name,
                status=SubscriberStatus.PENDING,
                source="web:subscribe",
                ip=job.ip,
                user_agent=job.user_agent,
                allow_erased=True,  # they asked again, on the form: a new consent
            )
            return s if s.status in FORM_MAY_CONFIRM else None
        if job.kind == "confirm" and job.subscriber_id is not None:
            s2 = subscribers.by_id(job.subscriber_id)
            return s2 if s2 is not None and s2.status in MAY_RESUBSCRIBE else None
        return None

    def _confirm(self, s: Subscriber, choices: dict[str, Any] | None = None, job: int = 0) -> None:
        confirm_nonce = self.store.subscribers.request_confirmation(s.id, choices, job)
        if confirm_nonce is None:
            return  # active meanwhile, or mailed a confirmation today: nothing to send
        token = self.signer.sign(s.id, s.nonce, confirm_nonce)
        url = f"{self.settings.base_url.rstrip('/')}/confirm/{token}"
        language = (choices or {}).get("language") or s.language or ""
        try:
            send_confirmation(self.settings, s.email, s.name, url, language)
        except MailerError:
            self.store.subscribers.confirmation_not_sent(s.id)
            raise
