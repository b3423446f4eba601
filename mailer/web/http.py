"""HTTP plumbing every endpoint shares: bounded bodies and forms, a per-process rate
limit, the client's address, and the access log that never shows a token or an address."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from mailer.text import safe

log = logging.getLogger("mailer.access")
FORM_LIMIT = 64 * 1024
MAX_FIELDS = 150  # the preference page: name, language, pause and up to 100 topics


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


async def read_form(request: Request) -> ImmutableMultiDict[str, str] | None:
    """Form fields (urlencoded or multipart), or None for anything else or too large.
    `.get` gives a field's first value, `.getlist` all of them (the topics' checkboxes)."""
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
        form = await replayed.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception:  # malformed multipart: a 400, never a 500
        return None
    return ImmutableMultiDict([(k, v) for k, v in form.multi_items() if isinstance(v, str)])


def negotiate(accept_language: str, offered: tuple[str, ...]) -> str | None:
    """The offered language a browser's Accept-Language asks for first, if any."""
    asked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if tag and weight > 0:
            asked.append((-weight, i, tag.strip()))
    lowered = {o.lower(): o for o in offered}
    for _, _, tag in sorted(asked):
        t = tag.lower()
        for candidate in (t, t.split("-")[0]):
            if candidate in lowered:
                return lowered[candidate]
        for o in offered:  # zh-TW asks; zh-CN is offered: the same language first
            if o.lower().split("-")[0] == t.split("-")[0]:
                return o
    return None


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


def client_of(request: Request) -> tuple[str | None, str | None]:
    ip = request.client.host if request.client else None
    return ip, (request.headers.get("user-agent") or "")[:400] or None


_SECRET_SEGMENT = re.compile(r"@|%40|[^/]*\.[^/]*\.|[^/]{33,}", re.I)


def redact(path: str) -> str:
    """A path as the log may show it: any segment shaped like a token (dotted, or long)
    or an address becomes {redacted}, wherever it sits (//u/..., /news/u/..., 404s)."""
    shown = "/".join(
        "{redacted}" if _SECRET_SEGMENT.search(seg) else seg for seg in path.split("/")
    )[:200]
    return safe(shown)  # a %0a in the path must not forge a log line, nor ESC reach a terminal


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
            log.error(
                "%s %s failed: %s", safe(scope["method"]), redact(scope["path"]), type(e).__name__
            )
            if status[0] == 0:
                response = PlainTextResponse("temporarily unavailable; try again", 503)
                await response(scope, receive, send_wrapper)
        finally:
            log.info(
                "%s %s %s %.1fms",
                safe(scope["method"]),
                redact(scope["path"]),
                status[0],
                (time.perf_counter() - start) * 1000,
            )
