"""mailer serve, mailer preview."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mailer.cli import Obj, cli, pass_obj
from mailer.text import safe

F = TypeVar("F", bound=Callable[..., Any])


def listen_options(port: int, port_help: str) -> Callable[[F], F]:
    """--host and --port, shared by the commands that run a server."""

    def decorate(f: F) -> F:
        f = click.option(
            "--port", default=port, show_default=True, type=click.IntRange(1, 65535), help=port_help
        )(f)
        return click.option(
            "--host", default="127.0.0.1", show_default=True, help="Interface to listen on."
        )(f)

    return decorate


@cli.command()
@listen_options(8000, "Port to listen on.")
@pass_obj
def serve(obj: Obj, host: str, port: int) -> None:
    """Serve the unsubscribe and subscribe pages and POST /webhooks/sendgrid.

    \b
    Example:
      mailer serve --host 127.0.0.1 --port 8000
    """
    import logging

    import uvicorn

    from mailer.content.issue_files import welcome_missing
    from mailer.store import open_store
    from mailer.web.serve import create_app
    from mailer.web.sockets import bind_free

    settings = obj.settings()
    with open_store(settings) as store:
        app = create_app(settings, store)  # a bad setting stops here, in one line
        # Bound here, not by uvicorn: a taken port is one line and exit 1, like any error.
        sock, _ = bind_free(host, port, tries=1)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        click.echo(
            f"mailer serve on http://{host}:{port} (unsubscribe links start with {settings.base_url})"
        )
        if missing := welcome_missing(settings):
            click.echo(safe(missing), err=True)
        # proxy_headers off: uvicorn would trust X-Forwarded-For from 127.0.0.1 by default;
        # the app trusts it only from trusted_proxies. A browser's idle keep-alive
        # connection must not hold Ctrl-C up for long.
        config = uvicorn.Config(
            app,
            access_log=False,
            log_level="warning",
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
        uvicorn.Server(config).run(sockets=[sock])


@cli.command("form")
@click.option(
    "--lang", "language", metavar="TAG", help="The form's language (default: the list's)."
)
@pass_obj
def form(obj: Obj, language: str | None) -> None:
    """Print a sign-up form to paste into another site: it posts to mailer serve at
    base_url, offers the topics, and carries the proof-of-work widget (served by mailer
    serve, no third party) when signup_proof_of_work is on.

    \b
    Example:
      mailer form --lang en > signup.html
    """
    from mailer.errors import InputError
    from mailer.web.embed import signup_snippet

    settings = obj.settings()
    settings.require("base_url")
    if language and language not in settings.offered_languages:
        offered = ", ".join(settings.offered_languages)
        raise InputError(f"--lang {language}: not one this newsletter offers ({offered})")
    click.echo(signup_snippet(settings, language or ""), nl=False)


@cli.command()
@click.argument("issue", type=click.Path(path_type=Path))
@listen_options(8025, "Port (the next free one if taken).")
@click.option("--no-open", is_flag=True, help="Do not open the browser.")
@click.option("--as", "as_email", metavar="EMAIL", help="Personalize for this subscriber.")
@click.option(
    "--lang", "language", metavar="TAG", help="Preview its edition in TAG (ISSUE.TAG.md)."
)
@pass_obj
def preview(
    obj: Obj,
    issue: Path,
    host: str,
    port: int,
    no_open: bool,
    as_email: str | None,
    language: str | None,
) -> None:
    """Preview an issue (or a directory of issues) in the browser, live.

    Desktop, mobile, dark mode, plain text and the message source, with the size against
    Gmail's clipping limit and the build's warnings. Editing the issue or a template
    refreshes the page.

    \b
    Example:
      mailer preview issues/2026-11-20-weekly.md --no-open
    """
    import threading
    import webbrowser

    import uvicorn

    from mailer.errors import InputError
    from mailer.web.preview import Previewer, create_preview_app

    PreviewServer = _preview_server()
    from mailer.web.sockets import bind_free

    if not issue.exists():
        raise InputError(f"{issue}: no such issue file or directory; check the path")
    if language:
        from mailer.content.issue_files import edition_path

        issue = edition_path(issue, language)
    settings = obj.settings()
    previewer = Previewer(settings, issue.resolve(), as_email)
    sock, bound = bind_free(host, port)
    if bound != port:
        click.echo(f"port {port} is in use; using {bound}")
    url = f"http://{host}:{bound}/"
    click.echo(f"previewing {issue} at {url} (Ctrl-C to stop)")
    if not no_open:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    app = create_preview_app(previewer, hosts=(host,))
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    PreviewServer(config, previewer).run(sockets=[sock])


def _preview_server() -> type:
    import asyncio
    import os

    import uvicorn

    from mailer.web.preview import stop_streams

    class PreviewServer(uvicorn.Server):
        """Ends the live-reload streams on the first Ctrl-C, so it stops at once; a second
        one exits on the spot, quietly, rather than tearing the loop down (tracebacks)."""

        def __init__(self, config: uvicorn.Config, previewer: Any) -> None:
            super().__init__(config)
            self.previewer = previewer
            self.loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:
                os._exit(130)
            if self.loop is not None:
                stop_streams(self.previewer, self.loop)
            super().handle_exit(sig, frame)

    return PreviewServer


@cli.group()
def archive() -> None:
    """The web archive of sent issues (also served live by `mailer serve` at /archive/).

    \b
    Example:
      mailer archive export public
    """


@archive.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@pass_obj
def archive_export(obj: Obj, directory: str) -> None:
    """Write the archive as static files for any static host: archive/index.html,
    archive/SLUG/index.html, feed.xml and media/. Links are relative; the subscribe
    form posts to base_url, where `mailer serve` runs.

    \b
    Example:
      mailer archive export public
    """
    from mailer.store import open_store
    from mailer.web.archive import export

    if not directory.strip():  # "" would be the current directory: the project itself
        raise click.UsageError(
            "DIRECTORY is empty; name a folder, e.g. mailer archive export public"
        )
    out = Path(directory)
    settings = obj.settings()
    settings.require("base_url")
    with open_store(settings) as store:
        written = export(settings, store, out)
    issues = sum(1 for p in written if p.name == "index.html" and p.parent.parent.name == "archive")
    click.echo(
        f"wrote {len(written)} files to {out} ({issues} issues); open {out / 'archive' / 'index.html'}"
    )
