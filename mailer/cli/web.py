"""mailer serve, mailer preview."""

from __future__ import annotations

import click

from mailer.cli import Obj, cli, pass_obj


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@pass_obj
def serve(obj: Obj, host: str, port: int) -> None:
    """Serve the unsubscribe and subscribe pages and POST /webhooks/sendgrid.

    \b
    Example:
      mailer serve --host 127.0.0.1 --port 8000
    """
    import logging

    import uvicorn

    from mailer.store import open_store
    from mailer.web.serve import create_app

    settings = obj.settings()
    store = open_store(settings)
    app = create_app(settings, store)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    click.echo(
        f"mailer serve on http://{host}:{port} (unsubscribe links start with {settings.base_url})"
    )
    try:
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
    finally:
        store.close()
