"""mailer init, mailer build."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailer.cli import EXIT_ERROR, Obj, cli, pass_obj
from mailer.text import safe


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init(directory: Path) -> None:
    """Create a newsletter project: settings, templates, an example issue.

    Never overwrites a file that exists.

    \b
    Example:
      mailer init my-letter
    """
    from mailer.project import init_project

    result = init_project(directory)
    for path in result.created:
        click.echo(f"created {path}")
    for path in result.kept:
        click.echo(f"kept    {path} (exists)")
    click.echo(f"Next: cd {directory} && {_program()} build issues/2026-11-20-weekly.md")


def _program() -> str:
    """How to run mailer again: `mailer` when that is on PATH and is this one, else the
    path this one was started by (a venv's .venv/bin/mailer after `make demo`)."""
    import shutil

    here = Path(sys.argv[0])
    found = shutil.which("mailer")
    if here.name != "mailer" or (found and Path(found).resolve() == here.resolve()):
        return "mailer"
    return str(here.resolve())


@cli.command()
@click.argument("issue", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("build"),
    show_default=True,
    help="Directory for <slug>.html and <slug>.txt.",
)
@click.option("--as", "as_email", metavar="EMAIL", help="Personalize for this subscriber.")
@click.option("--images", "list_images", is_flag=True, help="List every image, local and remote.")
@click.option("--lang", "language", metavar="TAG", help="Build its edition in TAG (ISSUE.TAG.md).")
@pass_obj
def build(
    obj: Obj,
    issue: Path,
    out_dir: Path,
    as_email: str | None,
    list_images: bool,
    language: str | None,
) -> None:
    """Compile an issue to the HTML and text a subscriber will get.

    Local images are resized and converted into OUTPUT/media (and served by
    `mailer serve` once sent). Exits 1 when the HTML is over 95 KB (Gmail clips at
    102 KB; mailer keeps a margin).

    \b
    Example:
      mailer build issues/2026-11-20-weekly.md -o build
      mailer build issues/2026-11-20-weekly.md --images
      mailer build issues/2026-11-20-weekly.md --lang en
    """
    from mailer.compose.build import build_issue

    result = build_issue(obj.settings(), issue, out_dir, as_email, language)
    click.echo(f"subject: {result.subject}")
    for path, size in result.files:
        click.echo(f"{path}  {size / 1024:.1f} KB")
    if list_images:
        for name, w, h, size in result.local_images:
            click.echo(f"image (local)  media/{name}  {w}x{h}  {size / 1024:.1f} KB")
        for url in result.remote_images:
            click.echo(f"image (remote) {safe(url)}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.error:
        click.echo(f"Error: {result.error}", err=True)
        sys.exit(EXIT_ERROR)
