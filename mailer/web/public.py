"""What anyone may read: the archive, its feed, images by content hash, and a health check."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from mailer.content import media
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
    item = await run_in_threadpool(st.store.archive.issue, request.path_params["slug"])
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


async def healthz(request: Request) -> Response:
    await run_in_threadpool(state_of(request).store.subscribers.count)
    return PlainTextResponse("ok")
