"""`mailer serve`: the app, its routes, and the work that runs beside it.

Stateless: every request reads and writes the database, so several processes can run
behind one proxy on one PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from mailer import heap
from mailer.config import Settings
from mailer.errors import MailerError
from mailer.feedback.apply import Rules
from mailer.feedback.mailbox import fetch
from mailer.sending.outbound import Outbound
from mailer.store import Store
from mailer.tokens import click_signer, confirm_signer, resubscribe_signer, unsubscribe_signer
from mailer.web import preferences, public, subscription
from mailer.web.archive import Site
from mailer.web.challenge import ProofOfWork
from mailer.web.http import AccessLog, RateLimit, log
from mailer.web.pages import Pages
from mailer.web.state import ServeState
from mailer.web.webhook import sendgrid_webhook, webhook_key

ROUTES = [  # every URL mailer serve answers, by the module that owns it
    Route("/healthz", public.healthz, name="healthz"),
    Route("/u/{token}", subscription.unsubscribe_page, methods=["GET"]),
    Route("/u/{token}", subscription.unsubscribe, methods=["POST"]),
    Route("/u/{token}/preferences", preferences.preferences_page, methods=["GET"]),
    Route("/u/{token}/preferences", preferences.preferences_post, methods=["POST"]),
    Route("/manage", preferences.manage_page, methods=["GET"]),
    Route("/manage", preferences.manage_post, methods=["POST"]),
    Route("/altcha/challenge", public.challenge, methods=["GET"]),
    Route("/altcha.js", public.altcha_js, methods=["GET"]),
    Route("/l/{token}", public.follow_link, methods=["GET"]),
    Route("/stats", public.stats_page, methods=["GET"]),
    Route("/resubscribe/{token}", subscription.resubscribe, methods=["POST"]),
    Route("/subscribe", subscription.subscribe_page, methods=["GET"]),
    Route("/subscribe", subscription.subscribe, methods=["POST"]),
    Route("/confirm/{token}", subscription.confirm_page, methods=["GET"]),
    Route("/confirm/{token}", subscription.confirm_post, methods=["POST"]),
    Route("/webhooks/sendgrid", sendgrid_webhook, methods=["POST"]),
    Route("/archive", public.to_slash, methods=["GET"]),
    Route("/archive/", public.archive_index, methods=["GET"]),
    Route("/archive/{slug}", public.to_slash, methods=["GET"]),
    Route("/archive/{slug}/", public.archive_issue, methods=["GET"]),
    Route("/archive/{slug}/{language}", public.to_slash, methods=["GET"]),
    Route("/archive/{slug}/{language}/", public.archive_issue, methods=["GET"]),
    Route("/feed.xml", public.feed, methods=["GET"]),
    Route("/media/{name}", public.media_file, methods=["GET"]),
]


def create_app(settings: Settings, store: Store, background: bool = True) -> Starlette:
    """The app. With `background`, a thread sends queued confirmations while it runs;
    tests that want to decide when may pass False and call `outbound.drain()`."""
    settings.require("secret_key")
    pages = Pages(settings)
    for language in settings.offered_languages:
        pages.of(language)  # every catalog read (and checked) now, not on some reader's visit
    state = ServeState(
        settings=settings,
        store=store,
        pages=pages,
        unsub=unsubscribe_signer(settings.secret_key),
        resub=resubscribe_signer(settings.secret_key),
        confirm=confirm_signer(settings.secret_key),
        limiter=RateLimit(),
        webhook_key=webhook_key(settings),
        rules=Rules.of(settings),
        ingest=concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="webhook"),
        outbound=Outbound(settings, store),
        site=Site.of(settings),
        pow=ProofOfWork(settings.secret_key, settings.signup_proof_of_work, store),
        clicks=click_signer(settings.secret_key),
    )

    stopping = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        workers = []
        if background:
            workers.append(threading.Thread(target=state.outbound.run, name="mail-queue"))
            if settings.bounce_fetch_interval and settings.bounce_imap_url:
                workers.append(
                    threading.Thread(
                        target=_fetch_bounces, args=(settings, stopping), name="bounces"
                    )
                )
        for w in workers:
            w.daemon = True
            w.start()
        try:
            # What start-up built (modules, templates, the app) sits out the collector's
            # full passes for the server's life: each walked it all again, a fifth of the
            # webhook's time under SendGrid's posts.
            with heap.frozen():
                yield
        finally:
            state.outbound.stop()
            state.ingest.shutdown(wait=True)
            stopping.set()
            for w in workers:
                await run_in_threadpool(w.join, 10)

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.mailer = state
    if settings.trusted_proxies:
        # uvicorn's own: the client is the rightmost X-Forwarded-For hop that is not one
        # of these proxies. Without the setting the header is ignored: anyone can send it.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    app.add_middleware(AccessLog)
    return app


def _fetch_bounces(settings: Settings, stopping: threading.Event) -> None:
    """`mailer bounces fetch` every bounce_fetch_interval seconds, while serve runs."""

    while not stopping.is_set():
        try:
            r = fetch(settings)
            if r.messages:
                log.info("bounces: %d new message(s), %s", r.messages, dict(r.outcomes))
        except MailerError as e:
            log.warning("bounces: %s", e)
        except Exception as e:  # never let the loop die: try again next time
            log.error("bounces: %s", type(e).__name__)
        stopping.wait(settings.bounce_fetch_interval)
