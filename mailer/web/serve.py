"""`mailer serve`: unsubscribe pages (RFC 8058 one-click), double opt-in, SendGrid's webhook.

Stateless: every request reads and writes the database, so several processes can run
behind one proxy on one PostgreSQL. GET never changes anything; POST acts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mailer import addresses, heap
from mailer.config import Settings
from mailer.content import media
from mailer.errors import ConfigError, MailerError
from mailer.feedback.apply import Applied, Outcome, Rules, apply_batch
from mailer.feedback.mailbox import fetch
from mailer.models import SUPPRESSED, SubscriberStatus
from mailer.providers.sendgrid import webhook
from mailer.sending.outbound import MAY_RESUBSCRIBE, Outbound
from mailer.store import Store
from mailer.store.subscribers import Confirmed, Subscriber, clean_name
from mailer.tokens import TokenSigner, confirm_signer, resubscribe_signer, unsubscribe_signer
from mailer.web.archive import Site
from mailer.web.pages import Form, Pages

FORM_LIMIT = 64 * 1024
WEBHOOK_LIMIT = 8 * 1024 * 1024
WEBHOOK_DEADLINE = 10.0  # seconds: SendGrid gives up on a request not answered in time
log = logging.getLogger("mailer.access")


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request) -> dict[str, str] | None:
    """Form fields (urlencoded or multipart), or None for anything else or too large."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    try:
        body = await read_body(request, FORM_LIMIT)
    except TooLarge:
        return None

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    replayed = Request(request.scope, replay)
    try:
        form = await replayed.form(max_files=0, max_fields=20)
    except Exception:  # malformed multipart: a 400, never a 500
        return None
    return {k: v for k, v in form.items() if isinstance(v, str)}


class RateLimit:
    """A few subscribe attempts per address per minute, per process."""

    def __init__(self, per_minute: int = 5) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, list[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self.seen.get(key, []) if now - t < 60]
        if len(recent) >= self.per_minute:
            self.seen[key] = recent
            return False
        recent.append(now)
        self.seen[key] = recent
        if len(self.seen) > 10000:  # forget the quiet ones
            self.seen = {k: v for k, v in self.seen.items() if now - v[-1] < 60}
        return True


@dataclass
class ServeState:
    """What every endpoint reads, from request.app.state.mailer."""

    settings: Settings
    store: Store
    pages: Pages
    unsub: TokenSigner
    resub: TokenSigner
    confirm: TokenSigner
    limiter: RateLimit
    webhook_key: Any  # the parsed public key, or None when the webhook is off
    rules: Rules  # how reports act (soft bounces, address matching)
    # Webhook batches are applied one at a time, by one thread: they all write, and the
    # database takes one writer at a time anyway; one connection keeps its cache warm
    # (four threads each with its own cost a fifth more).
    ingest: concurrent.futures.ThreadPoolExecutor
    outbound: Outbound  # sends the confirmations the pages promise, after the response
    site: Site  # the archive's pages and feed


def create_app(settings: Settings, store: Store, background: bool = True) -> Starlette:
    """The app. With `background`, a thread sends queued confirmations while it runs;
    tests that want to decide when may pass False and call `outbound.drain()`."""
    settings.require("secret_key")
    routes = [
        Route("/healthz", healthz, name="healthz"),
        Route("/u/{token}", unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", unsubscribe, methods=["POST"]),
        Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
        Route("/subscribe", subscribe_page, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm_post, methods=["POST"]),
        Route("/webhooks/sendgrid", sendgrid_webhook, methods=["POST"]),
        Route("/archive", _to_slash, methods=["GET"]),
        Route("/archive/", archive_index, methods=["GET"]),
        Route("/archive/{slug}", _to_slash, methods=["GET"]),
        Route("/archive/{slug}/", archive_issue, methods=["GET"]),
        Route("/feed.xml", feed, methods=["GET"]),
        Route("/media/{name}", media_file, methods=["GET"]),
    ]
    state = ServeState(
        settings=settings,
        store=store,
        pages=Pages(settings),
        unsub=unsubscribe_signer(settings.secret_key),
        resub=resubscribe_signer(settings.secret_key),
        confirm=confirm_signer(settings.secret_key),
        limiter=RateLimit(),
        webhook_key=_webhook_key(settings),
        rules=Rules.of(settings),
        ingest=concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="webhook"),
        outbound=Outbound(settings, store),
        site=Site.of(settings),
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

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.mailer = state
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


def _webhook_key(settings: Settings) -> Any:
    if not settings.sendgrid_webhook_public_key:
        return None
    try:
        return webhook.load_public_key(settings.sendgrid_webhook_public_key)
    except webhook.BadKey as e:
        raise ConfigError(
            f"sendgrid_webhook_public_key {e}; copy it again from SendGrid's Mail Settings → "
            "Event Webhook → Signature Verification"
        ) from None


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.mailer
    return state


async def _subscriber(
    request: Request, signer: TokenSigner, count: int
) -> tuple[Subscriber, tuple[int, ...]] | None:
    """The living subscriber a link's token names (id and nonce must both match), and the
    token's numbers; None for anything forged, altered, or belonging to an erased person."""
    ids = signer.unsign(request.path_params["token"], count)
    if ids is None:
        return None
    s = await run_in_threadpool(_state(request).store.subscribers.by_token, ids[0], ids[1])
    return (s, ids) if s is not None else None


async def unsubscribe_page(request: Request) -> Response:
    st = _state(request)
    found = await _subscriber(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    if s.status in SUPPRESSED:
        return _unsubscribed(st, s)
    _ = st.pages.gettext
    return st.pages.render(
        _("Unsubscribe?"),
        [
            _("Stop sending %(newsletter)s to %(email)s?")
            % {"newsletter": st.settings.display_name, "email": addresses.mask(s.email)}
        ],
        Form(request.url.path, _("Unsubscribe"), hidden=[("List-Unsubscribe", "One-Click")]),
    )


def _unsubscribed(st: ServeState, s: Subscriber) -> Response:
    _ = st.pages.gettext
    lines = [
        _("%(email)s will get no more email from %(newsletter)s.")
        % {"email": addresses.mask(s.email), "newsletter": st.settings.display_name}
    ]
    if s.status not in MAY_RESUBSCRIBE:
        # Bounced or complained: coming back takes a new sign-up on the form, never a
        # button in an old email (whoever holds the email could press it).
        return st.pages.render(_("You are unsubscribed"), lines)
    return st.pages.render(
        _("You are unsubscribed"),
        lines,
        Form(
            f"/resubscribe/{st.resub.sign(s.id, s.nonce)}", _("Subscribe again"), style="secondary"
        ),
    )


async def unsubscribe(request: Request) -> Response:
    """RFC 8058 one-click: acts at once, answers 2xx, idempotent."""
    st = _state(request)
    form = await read_form(request)
    if form is None or form.get("List-Unsubscribe") != "One-Click":
        return PlainTextResponse("Expected the form field List-Unsubscribe=One-Click.", 400)
    found = await _subscriber(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    s, (_, _, ref) = found
    if await run_in_threadpool(st.store.events.one_click_unsubscribe, s.id, ref):
        s = dataclasses.replace(s, status=SubscriberStatus.UNSUBSCRIBED)
    return _unsubscribed(st, s)


async def resubscribe(request: Request) -> Response:
    """Coming back takes a fresh double opt-in: the button sends a confirmation email."""
    st = _state(request)
    found = await _subscriber(request, st.resub, 2)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    if s.status == SubscriberStatus.ACTIVE:
        return _subscribed(st, s, st.pages.gettext("You are subscribed"))
    if s.status not in MAY_RESUBSCRIBE:
        return _unsubscribed(st, s)
    if not st.limiter.allow(f"resubscribe:{s.id}"):  # an old link must not flood the inbox
        return _slow_down(st)
    await run_in_threadpool(st.store.queue.confirm, s.id)
    st.outbound.notify()
    return _check_inbox(st, s.email)


def _slow_down(st: ServeState) -> Response:
    _ = st.pages.gettext
    return st.pages.render(
        _("Slow down"), [_("Too many attempts; try again in a minute.")], status=429
    )


async def subscribe_page(request: Request) -> Response:
    st = _state(request)
    _ = st.pages.gettext
    return st.pages.render(
        _("Subscribe to %(newsletter)s") % {"newsletter": st.settings.display_name},
        [_("We will send you an email to confirm.")],
        Form(
            "/subscribe",
            _("Subscribe"),
            fields=[
                ("email", _("Email address"), "email"),
                ("name", _("Name (optional)"), "text"),
            ],
        ),
    )


async def subscribe(request: Request) -> Response:
    st = _state(request)
    _ = st.pages.gettext
    form = await read_form(request)
    if form is None or not form.get("email"):
        return st.pages.render(_("Subscribe"), [_("Please give an email address.")], status=400)
    ip, ua = _client(request)
    if not st.limiter.allow(ip or "?"):
        return _slow_down(st)
    try:
        email = addresses.normalize(form["email"])
    except addresses.InvalidAddress as e:
        return st.pages.render(
            _("Subscribe"),
            [_("That address does not look right: %(reason)s") % {"reason": e}],
            status=400,
        )
    name = clean_name(form.get("name", ""))
    await run_in_threadpool(st.store.queue.signup, email, name, ip, ua)
    st.outbound.notify()
    # The same work and the same answer whether the address was new, pending, subscribed
    # or suppressed: who it is is decided after the response, by the mail queue.
    return _check_inbox(st, email)


def _check_inbox(st: ServeState, email: str) -> Response:
    _ = st.pages.gettext
    return st.pages.render(
        _("Check your inbox"),
        [
            _("If %(email)s can subscribe, a confirmation email is on its way.")
            % {"email": addresses.mask(email)}
        ],
    )


def _subscribed(st: ServeState, s: Subscriber, title: str) -> Response:
    line = st.pages.gettext("%(email)s gets %(newsletter)s.") % {
        "email": addresses.mask(s.email),
        "newsletter": st.settings.display_name,
    }
    return st.pages.render(title, [line])


async def confirm_page(request: Request) -> Response:
    st = _state(request)
    found = await _subscriber(request, st.confirm, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    _ = st.pages.gettext
    return st.pages.render(
        _("Confirm your subscription"),
        [
            _("Subscribe %(email)s to %(newsletter)s?")
            % {"email": addresses.mask(s.email), "newsletter": st.settings.display_name}
        ],
        Form(request.url.path, _("Confirm")),
    )


async def confirm_post(request: Request) -> Response:
    st = _state(request)
    found = await _subscriber(request, st.confirm, 3)
    if found is None:
        return st.pages.not_found()
    s, (sid, nonce, confirm_nonce) = found
    ip, ua = _client(request)
    result = await run_in_threadpool(
        st.store.subscribers.confirm, sid, nonce, confirm_nonce, ip, ua
    )
    _ = st.pages.gettext
    if result is Confirmed.CONFIRMED:
        st.outbound.notify()  # the welcome mail, if there is one, goes out after this page
        return _subscribed(st, s, _("You are subscribed"))
    if result is Confirmed.ALREADY:
        return _subscribed(st, s, _("You are already subscribed"))
    return st.pages.render(
        _("This link has expired"),
        [
            _("This confirmation link was used already, or a newer one was sent."),
            _("To subscribe, use the newest email, or sign up again."),
        ],
        status=410,
    )


async def sendgrid_webhook(request: Request) -> Response:
    """Validate (headers, then body and signature), read each event on its own, apply the
    batch in a few statements. An answer within WEBHOOK_DEADLINE: past it (a database that
    is locked or slow) a 503, and SendGrid posts the batch again; what was applied of it
    meanwhile is found recorded and dropped as duplicates."""
    st = _state(request)
    if st.webhook_key is None:
        return PlainTextResponse("webhook not configured: set sendgrid_webhook_public_key", 403)
    ts = request.headers.get(webhook.TIMESTAMP_HEADER) or ""
    signature = request.headers.get(webhook.SIGNATURE_HEADER) or ""
    try:
        webhook.check_headers(signature, ts)
    except webhook.BadSignature as e:
        return PlainTextResponse("missing signature" if "missing" in str(e) else str(e), 401)
    try:
        body = await read_body(request, WEBHOOK_LIMIT)
    except TooLarge:
        return PlainTextResponse("body too large", 413)
    try:
        webhook.verify(st.webhook_key, signature, ts, body)
    except webhook.BadSignature:
        return PlainTextResponse("signature not valid", 403)
    # Read and applied in a worker thread: the event loop keeps answering meanwhile.
    work = asyncio.get_running_loop().run_in_executor(st.ingest, _ingest, st, body)
    try:
        applied, unreadable = await asyncio.wait_for(asyncio.shield(work), WEBHOOK_DEADLINE)
    except webhook.BadPayload as e:
        return PlainTextResponse(str(e), 400)
    except TimeoutError:
        log.warning("webhook: a batch took over %ss; answered 503 for a retry", WEBHOOK_DEADLINE)
        return PlainTextResponse("busy; post again", 503)
    counts = applied.counts
    rejected = unreadable + counts[Outcome.REJECTED]
    if rejected:
        log.warning("webhook: %d event(s) rejected as unreadable or unstorable", rejected)
    duplicates = counts[Outcome.DUPLICATE]
    recorded = counts.total() - duplicates - counts[Outcome.REJECTED]
    return PlainTextResponse(
        f"recorded {recorded}, duplicates {duplicates}, rejected {rejected}", 200
    )


def _ingest(st: ServeState, body: bytes) -> tuple[Applied, int]:
    parsed, unreadable = webhook.parse(body)
    return apply_batch(st.store.engine, parsed, st.rules), unreadable


# The archive: public, cacheable for a few minutes, never framed, never running a script.
PUBLIC = {
    "Cache-Control": "public, max-age=300",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "script-src 'none'; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


async def _to_slash(request: Request) -> Response:
    return RedirectResponse(request.url.path + "/", status_code=308)


async def archive_index(request: Request) -> Response:
    st = _state(request)
    items = await run_in_threadpool(st.store.archive.issues)
    return HTMLResponse(st.site.index(items), headers=PUBLIC)


async def archive_issue(request: Request) -> Response:
    st = _state(request)
    item = await run_in_threadpool(st.store.archive.issue, request.path_params["slug"])
    if item is None:
        _ = st.pages.gettext
        return st.pages.render(
            _("No such issue"), [_("There is no issue at this address.")], status=404
        )
    return HTMLResponse(st.site.issue_page(item), headers=PUBLIC)


async def feed(request: Request) -> Response:
    st = _state(request)
    items = await run_in_threadpool(st.store.archive.issues, 50)
    data = await run_in_threadpool(st.site.feed, items)
    return Response(data, media_type="application/atom+xml; charset=utf-8", headers=PUBLIC)


async def media_file(request: Request) -> Response:
    """Images by content hash: the bytes behind a name never change, so cache them for ever."""
    st = _state(request)
    name = request.path_params["name"]
    if media.content_type(name) is None:
        return PlainTextResponse("not found", 404)
    found = await run_in_threadpool(st.store.archive.media, name)
    if found is None:
        return PlainTextResponse("not found", 404)
    kind, data = found
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(data, media_type=kind, headers=headers)


async def healthz(request: Request) -> Response:
    await run_in_threadpool(_state(request).store.subscribers.count)
    return PlainTextResponse("ok")


def _client(request: Request) -> tuple[str | None, str | None]:
    ip = request.client.host if request.client else None
    return ip, (request.headers.get("user-agent") or "")[:400] or None


_SECRET_SEGMENT = re.compile(r"@|%40|[^/]*\.[^/]*\.|[^/]{33,}", re.I)


def redact(path: str) -> str:
    """A path as the log may show it: any segment shaped like a token (dotted, or long)
    or an address becomes {redacted}, wherever it sits (//u/..., /news/u/..., 404s)."""
    return "/".join(
        "{redacted}" if _SECRET_SEGMENT.search(seg) else seg for seg in path.split("/")
    )[:200]


class AccessLog:
    """Method, redacted path, status, time: never a token or an address.

    Also the last guard: an error no endpoint expected (the database gone) answers 503,
    so clients and SendGrid retry, and is logged by its type only, since its text may
    quote an address. Never a 500 page, never a traceback in the log.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as e:
            log.error("%s %s failed: %s", scope["method"], redact(scope["path"]), type(e).__name__)
            if status[0] == 0:
                response = PlainTextResponse("temporarily unavailable; try again", 503)
                await response(scope, receive, send_wrapper)
        finally:
            log.info(
                "%s %s %s %.1fms",
                scope["method"],
                redact(scope["path"]),
                status[0],
                (time.perf_counter() - start) * 1000,
            )
