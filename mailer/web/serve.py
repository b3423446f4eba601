"""`mailer serve`: unsubscribe pages (RFC 8058 one-click), double opt-in, SendGrid's webhook.

Stateless: every request reads and writes the database, so several processes can run
behind one proxy on one PostgreSQL. GET never changes anything; POST acts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailer import addresses
from mailer.config import Settings
from mailer.models import SubscriberStatus
from mailer.providers import sendgrid_events
from mailer.store import Store
from mailer.tokens import TokenSigner, unsubscribe_signer
from mailer.web.pages import Form, Pages

FORM_LIMIT = 64 * 1024
WEBHOOK_LIMIT = 8 * 1024 * 1024
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


def create_app(settings: Settings, store: Store) -> Starlette:
    settings.require("secret_key")
    pages = Pages(settings)
    unsub: TokenSigner = unsubscribe_signer(settings.secret_key)
    resub = TokenSigner(settings.secret_key, "resubscribe")
    confirm = TokenSigner(settings.secret_key, "confirm")
    limiter = RateLimit()

    def subscriber_from(token: str, signer: TokenSigner) -> tuple[Any, int] | None:
        ids = signer.unsign(token, 2)
        if ids is None:
            return None
        s = store.subscribers.by_id(ids[0])
        return (s, ids[1]) if s is not None else None

    async def lookup(request: Request, signer: TokenSigner) -> tuple[Any, int] | None:
        """The subscriber and issue id a link's token names, or None for any bad token."""
        return await run_in_threadpool(subscriber_from, request.path_params["token"], signer)

    async def unsubscribe_page(request: Request) -> Response:
        found = await lookup(request, unsub)
        if found is None:
            return pages.not_found()
        s, _ = found
        if s.status == SubscriberStatus.UNSUBSCRIBED:
            return _unsubscribed(s)
        return pages.render(
            "Unsubscribe?",
            [f"Stop sending {settings.display_name} to {addresses.mask(s.email)}?"],
            Form(request.url.path, "Unsubscribe", hidden=[("List-Unsubscribe", "One-Click")]),
        )

    def _unsubscribed(s: Any) -> Response:
        resub_token = resub.sign(s.id, 0)
        return pages.render(
            "You are unsubscribed",
            [f"{addresses.mask(s.email)} will get no more email from {settings.display_name}."],
            Form(f"/resubscribe/{resub_token}", "Subscribe again", style="secondary"),
        )

    async def unsubscribe(request: Request) -> Response:
        form = await read_form(request)
        if form is None or form.get("List-Unsubscribe") != "One-Click":
            return PlainTextResponse("Expected the form field List-Unsubscribe=One-Click.", 400)
        found = await lookup(request, unsub)
        if found is None:
            return pages.not_found()
        s, issue_id = found
        await run_in_threadpool(
            store.subscribers.set_status,
            s.id,
            SubscriberStatus.UNSUBSCRIBED,
            f"one-click (issue {issue_id})",
        )
        return _unsubscribed(s)

    async def resubscribe(request: Request) -> Response:
        found = await lookup(request, resub)
        if found is None:
            return pages.not_found()
        s, _ = found
        ip, ua = _client(request)
        await run_in_threadpool(store.subscribers.resubscribe, s.id, "web:resubscribe", ip, ua)
        return pages.render(
            "Welcome back",
            [f"{addresses.mask(s.email)} is subscribed to {settings.display_name} again."],
        )

    async def subscribe_page(request: Request) -> Response:
        return pages.render(
            f"Subscribe to {settings.display_name}",
            ["We will send you an email to confirm."],
            Form(
                "/subscribe",
                "Subscribe",
                fields=[("email", "Email address", "email"), ("name", "Name (optional)", "text")],
            ),
        )

    async def subscribe(request: Request) -> Response:
        form = await read_form(request)
        if form is None or not form.get("email"):
            return pages.render("Subscribe", ["Please give an email address."], status=400)
        ip, ua = _client(request)
        if not limiter.allow(ip or "?"):
            return pages.render(
                "Slow down", ["Too many attempts; try again in a minute."], status=429
            )
        try:
            email = addresses.normalize(form["email"])
        except addresses.InvalidAddress as e:
            return pages.render("Subscribe", [f"That address does not look right: {e}"], status=400)
        await run_in_threadpool(
            _start_opt_in, settings, store, confirm, email, form.get("name", ""), ip, ua
        )
        # The same answer whether the address was new, pending or already subscribed.
        return pages.render(
            "Check your inbox",
            [f"If {addresses.mask(email)} can subscribe, a confirmation email is on its way."],
        )

    async def confirm_page(request: Request) -> Response:
        found = await lookup(request, confirm)
        if found is None:
            return pages.not_found()
        s, _ = found
        return pages.render(
            "Confirm your subscription",
            [f"Subscribe {addresses.mask(s.email)} to {settings.display_name}?"],
            Form(request.url.path, "Confirm"),
        )

    async def confirm_post(request: Request) -> Response:
        found = await lookup(request, confirm)
        if found is None:
            return pages.not_found()
        s, _ = found
        ip, ua = _client(request)
        await run_in_threadpool(store.subscribers.confirm, s.id, ip, ua)
        return pages.render(
            "You are subscribed",
            [f"Welcome! {addresses.mask(s.email)} will get {settings.display_name}."],
        )

    async def sendgrid_webhook(request: Request) -> Response:
        if not settings.sendgrid_webhook_public_key:
            return PlainTextResponse("webhook not configured: set sendgrid_webhook_public_key", 403)
        try:
            body = await read_body(request, WEBHOOK_LIMIT)
        except TooLarge:
            return PlainTextResponse("body too large", 413)
        sig = request.headers.get(sendgrid_events.SIGNATURE_HEADER)
        ts = request.headers.get(sendgrid_events.TIMESTAMP_HEADER)
        if not sig or not ts:
            return PlainTextResponse("missing signature", 401)
        try:
            sendgrid_events.verify(settings.sendgrid_webhook_public_key, sig, ts, body)
        except sendgrid_events.BadSignature:
            return PlainTextResponse("signature not valid", 403)
        try:
            parsed = sendgrid_events.parse(body)
        except sendgrid_events.BadPayload as e:
            return PlainTextResponse(str(e), 400)
        applied = await run_in_threadpool(store.events.apply, parsed)
        return PlainTextResponse(
            f"recorded {applied.recorded}, duplicates {applied.duplicates}", 200
        )

    async def healthz(request: Request) -> Response:
        await run_in_threadpool(store.subscribers.count)
        return PlainTextResponse("ok")

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
    ]
    app = Starlette(routes=routes)
    app.add_middleware(AccessLog)
    return app


def _client(request: Request) -> tuple[str | None, str | None]:
    ip = request.client.host if request.client else None
    return ip, (request.headers.get("user-agent") or "")[:400] or None


def _start_opt_in(
    settings: Settings,
    store: Store,
    signer: TokenSigner,
    email: str,
    name: str,
    ip: str | None,
    ua: str | None,
) -> None:
    from mailer.delivery.confirm import send_confirmation

    s, _created = store.subscribers.add(
        email,
        name,
        status=SubscriberStatus.PENDING,
        source="web:subscribe",
        ip=ip,
        user_agent=ua,
        allow_erased=True,
    )
    if s.status != SubscriberStatus.PENDING:
        return  # already active or suppressed: nothing to send, nothing to reveal
    url = f"{settings.base_url.rstrip('/')}/confirm/{signer.sign(s.id, 0)}"
    send_confirmation(settings, s.id, s.email, s.name, url)


class AccessLog:
    """Method, route pattern, status, time: never a token or an address."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"]
            for prefix in ("/u/", "/resubscribe/", "/confirm/"):
                if path.startswith(prefix):
                    path = prefix + "{token}"
            log.info(
                "%s %s %s %.1fms",
                scope["method"],
                path,
                status[0],
                (time.perf_counter() - start) * 1000,
            )
