"""What anyone may read: the archive, its feed, images by content hash, and a health check."""

from __future__ import annotations

import datetime as dt
import hmac
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from mailer.content import media
from mailer.content.issue import SLUG
from mailer.desk.stats import from_store, html_page
from mailer.web.state import state_of

# The archive: public, cacheable for a few minutes, never framed, never running a script.
PUBLIC = {
    "Cache-Control": "public, max-age=300",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "script-src 'none'; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


async def to_slash(request: Request) -> Response:
    return RedirectResponse(request.url.path + "/", status_code=308)


async def archive_index(request: Request) -> Response:
    st = state_of(request)
    items = await run_in_threadpool(st.store.archive.issues)
    return HTMLResponse(st.site.index(items), headers=PUBLIC)


async def archive_issue(request: Request) -> Response:
    st = state_of(request)
    slug, language = request.path_params["slug"], request.path_params.get("language", "")
    # Only a name an issue could have reaches the database (PostgreSQL refuses NUL in text).
    named = SLUG.match(slug) and (not language or SLUG.match(language))
    item = await run_in_threadpool(st.store.archive.issue, slug, language) if named else None
    if item is None:
        _ = st.pages.gettext
        return st.pages.render(
            _("No such issue"), [_("There is no issue at this address.")], status=404
        )
    return HTMLResponse(st.site.issue_page(item), headers=PUBLIC)


async def feed(request: Request) -> Response:
    st = state_of(request)
    items = await run_in_threadpool(st.store.archive.issues, 50)
    data = await run_in_threadpool(st.site.feed, items)
    return Response(data, media_type="application/atom+xml; charset=utf-8", headers=PUBLIC)


async def media_file(request: Request) -> Response:
    """Images by content hash: the bytes behind a name never change, so cache them for ever."""
    st = state_of(request)
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


async def stats_page(request: Request) -> Response:
    """`mailer stats --html` live, only with stats_token set and presented (a Bearer token,
    or ?token=); 404 without the setting, 401 without the token. Nothing on the page is
    fetched: its CSP allows no request at all."""
    st = state_of(request)
    expected = st.settings.stats_token
    if not expected:
        return PlainTextResponse("not found", 404)
    auth = request.headers.get("authorization", "")
    given = (
        auth[7:] if auth.lower().startswith("bearer ") else request.query_params.get("token", "")
    )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return PlainTextResponse(
            "stats_token required", 401, headers={"WWW-Authenticate": "Bearer"}
        )
    today = dt.datetime.now(dt.UTC).date()
    numbers = await run_in_threadpool(from_store, st.settings, st.store, today)
    return HTMLResponse(
        html_page(st.settings, numbers),
        headers={
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex, nofollow",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "frame-ancestors 'none'",
        },
    )


async def follow_link(request: Request) -> Response:
    """A counted link (count_clicks): one more for that link, then 302 to it. Only a link
    the issue had: anything forged, altered or unknown is a 404, never an open redirect."""
    st = state_of(request)
    ids = st.clicks.unsign(request.path_params["token"], 2)
    url = await run_in_threadpool(st.store.links.follow, *ids) if ids else None
    if url is None:
        return PlainTextResponse("not found", 404)
    return RedirectResponse(
        url, status_code=302, headers={"Cache-Control": "no-store", "Referrer-Policy": "origin"}
    )


async def challenge(request: Request) -> Response:
    """A fresh proof-of-work challenge for a sign-up form on another site (`mailer form`)."""
    st = state_of(request)
    if not st.pow.on:
        return PlainTextResponse("not found", 404)
    return JSONResponse(
        st.pow.new(),
        headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"},
    )


ALTCHA_JS = Path(__file__).parent / "static" / "altcha.js"


async def altcha_js(request: Request) -> Response:
    """The ALTCHA widget, vendored (static/README.md): served here, fetched from nowhere."""
    return Response(
        ALTCHA_JS.read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "public, max-age=86400",
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def healthz(request: Request) -> Response:
    await run_in_threadpool(state_of(request).store.subscribers.count)
    return PlainTextResponse("ok")
