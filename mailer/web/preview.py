"""`mailer preview`: the issue in the browser, rendered by the very pipeline `mailer send` uses.

The email itself is served byte for byte as a recipient gets it (`/issue/NAME/email.html`);
the viewer around it (views, side panel, live reload) is a separate page. Edits to the issue
or any template re-render and push a reload through server-sent events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from mailer.compose.build import personalize_for
from mailer.config import Settings
from mailer.content import checks
from mailer.content.issue_files import ISSUE_SUFFIXES, read_issue
from mailer.content.media import Media
from mailer.content.render import Renderer
from mailer.errors import MailerError


@dataclass
class Rendered:
    name: str
    subject: str = ""
    preheader: str = ""
    date: str = ""
    html: str = ""
    text: str = ""
    source: str = ""
    size: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subject": self.subject,
            "preheader": self.preheader,
            "date": self.date,
            "size": self.size,
            "limit": checks.REFUSE_BYTES,
            "warnings": self.warnings,
            "error": self.error,
        }


def stop_streams(previewer: Previewer, loop: asyncio.AbstractEventLoop) -> None:
    """Called on Ctrl-C (from the signal handler): end every event stream now, so the
    server has no open connection to wait for."""
    loop.call_soon_threadsafe(previewer.stopping.set)


class Previewer:
    """Knows which issues there are and renders one on demand."""

    def __init__(self, settings: Settings, target: Path, as_email: str | None = None) -> None:
        self.settings = settings
        self.target = target
        self.as_email = as_email
        self.version = 0
        self.changed = asyncio.Event()
        self.stopping = asyncio.Event()  # set on Ctrl-C: event streams end at once
        # Local images are served by the preview itself at /media/ (the sent mail links them
        # under base_url, where `mailer serve` answers once the issue is pinned). One
        # renderer, so a photo is converted once, not on every keystroke.
        self.renderers: dict[str, Renderer] = {}  # by language: an edition speaks its own
        self.media: dict[str, Media] = {}

    def issues(self) -> dict[str, Path]:
        if self.target.is_dir():
            files = sorted(
                p
                for p in self.target.iterdir()
                if p.is_file() and p.suffix.lower() in ISSUE_SUFFIXES
            )
            return {p.name: p for p in files}
        return {self.target.name: self.target}

    def render(self, name: str) -> Rendered | None:
        path = self.issues().get(name)
        if path is None:
            return None
        out = Rendered(name)
        try:
            issue = read_issue(path)
            rendered = self.renderer(issue.language).render(issue)
            self.media.update((m.name, m) for m in rendered.media)
            settings = self.settings.in_language(issue.language)
            out.html, out.text, message = personalize_for(settings, rendered, self.as_email)
        except MailerError as e:
            out.error = str(e)
            return out
        out.subject, out.preheader, out.date = (
            rendered.issue.subject,
            rendered.issue.preheader,
            rendered.issue.date,
        )
        out.source = message.decode("ascii", "replace").replace("\r\n", "\n")
        out.size = len(out.html.encode("utf-8"))
        out.warnings = list(rendered.warnings) + checks.size_warnings(out.size)
        if checks.too_large(name, out.size):
            out.warnings.append(checks.too_large(name, out.size))
        return out

    def renderer(self, language: str) -> Renderer:
        found = self.renderers.get(language)
        if found is None:
            settings = self.settings.in_language(language)
            found = self.renderers[language] = Renderer(settings, media_base="/media/")
        return found

    def watched(self) -> list[Path]:
        paths = [self.target]
        templates = self.settings.project / "templates"
        if templates.is_dir():
            paths.append(templates)
        return paths

    async def watch(self) -> None:
        from watchfiles import awatch

        # stop_event: the watcher thread notices Ctrl-C within a step, not a timeout.
        async for _ in awatch(*self.watched(), debounce=100, step=20, stop_event=self.stopping):
            self.version += 1
            self.changed.set()
            self.changed = asyncio.Event()


def create_preview_app(previewer: Previewer, hosts: Sequence[str] = ("127.0.0.1",)) -> Starlette:
    """The preview app. It answers only requests addressed to `hosts` (the one it bound,
    plus localhost names): a page elsewhere that rebinds its DNS name to 127.0.0.1 cannot
    read drafts or the --as subscriber's data."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(previewer.watch())
        try:
            yield
        finally:
            task.cancel()

    allowed = (
        ["*"]
        if any(h in ("0.0.0.0", "::", "") for h in hosts)
        else [*hosts, "localhost", "127.0.0.1", "[::1]"]
    )
    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
    )
    app.state.previewer = previewer
    return app


_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    page = {"issues": None, "folder": "", "error": "", "message": ""} | values
    return HTMLResponse(_PAGES.get_template(template).render(**page), status)


def _previewer(request: Request) -> Previewer:
    previewer: Previewer = request.app.state.previewer
    return previewer


def _rendered(request: Request) -> Rendered | Response:
    r = _previewer(request).render(request.path_params["name"])
    if r is None:
        return _page("preview_page.html.j2", 404, title="Not found", message="No such issue.")
    return r


async def index(request: Request) -> Response:
    previewer = _previewer(request)
    if not previewer.target.is_dir():
        return Response(status_code=307, headers={"Location": f"/issue/{previewer.target.name}"})
    rendered = [previewer.render(name) for name in previewer.issues()]
    return _page(
        "preview_page.html.j2",
        200 if rendered else 404,
        title="Issues" if rendered else "No issues",
        issues=rendered,
        folder=str(previewer.target),
    )


async def viewer(request: Request) -> Response:
    r = _rendered(request)
    return r if isinstance(r, Response) else _page("viewer.html.j2", name=r.name)


async def email_html(request: Request) -> Response:
    r = _rendered(request)
    if isinstance(r, Response):
        return r
    if r.error:
        return _page("preview_page.html.j2", 500, title="Cannot render", error=r.error)
    return HTMLResponse(r.html)


async def email_text(request: Request) -> Response:
    r = _rendered(request)
    if isinstance(r, Response):
        return r
    return PlainTextResponse(r.error or r.text, 500 if r.error else 200)


async def source(request: Request) -> Response:
    r = _rendered(request)
    if isinstance(r, Response):
        return r
    return PlainTextResponse(r.error or r.source, 500 if r.error else 200)


async def info(request: Request) -> Response:
    r = _rendered(request)
    if isinstance(r, Response):
        return r
    return JSONResponse({**r.info(), "version": _previewer(request).version})


async def media_file(request: Request) -> Response:
    found = _previewer(request).media.get(request.path_params["name"])
    if found is None:
        return PlainTextResponse("not found", 404)
    return Response(found.data, media_type=found.content_type)


async def events(request: Request) -> Response:
    """Server-sent events: the version number now, and again whenever the issue or a
    template changes; a keep-alive comment every 15 s; the end on Ctrl-C."""
    previewer = _previewer(request)

    async def stream() -> AsyncIterator[str]:
        yield f"data: {previewer.version}\n\n"
        stop = asyncio.ensure_future(previewer.stopping.wait())
        try:
            while not previewer.stopping.is_set():
                change = asyncio.ensure_future(previewer.changed.wait())
                done, _ = await asyncio.wait(
                    {change, stop}, timeout=15, return_when=asyncio.FIRST_COMPLETED
                )
                change.cancel()
                if stop in done:
                    return
                yield f"data: {previewer.version}\n\n" if done else ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
        finally:
            stop.cancel()

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


ROUTES = [
    Route("/", index),
    Route("/issue/{name}", viewer),
    Route("/issue/{name}/email.html", email_html),
    Route("/issue/{name}/email.txt", email_text),
    Route("/issue/{name}/source", source),
    Route("/issue/{name}/info.json", info),
    Route("/events", events),
    Route("/media/{name}", media_file),
]
