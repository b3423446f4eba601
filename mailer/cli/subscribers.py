"""mailer subscribers ..., mailer db upgrade."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailer import addresses
from mailer.cli import EXIT_ERROR, Obj, cli, confirm_or_refuse, pass_obj
from mailer.models import SubscriberStatus
from mailer.text import safe

STATUS = click.Choice([s.value for s in SubscriberStatus])
WHERE = click.option(
    "--where",
    metavar="EXPR",
    help="Only the audience EXPR picks, e.g. 'topic:ai and not lang:en' (see README).",
)


def _store(obj: Obj):  # type: ignore[no-untyped-def]
    from mailer.store import open_store

    store = open_store(obj.settings())
    click.get_current_context().call_on_close(store.close)
    return store


@cli.group()
def subscribers() -> None:
    """Manage the list: import, export, add, unsubscribe, resubscribe, list, count, show, erase.

    \b
    Example:
      mailer subscribers import subscribers.csv
    """


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--allow-erased", is_flag=True, help="Re-add people who asked to be forgotten.")
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every invalid and duplicate row to this CSV (line,problem,detail).",
)
@pass_obj
def import_(
    obj: Obj, file: Path, dry_run: bool, allow_erased: bool, report_file: Path | None
) -> None:
    """Import a CSV with an 'email' column (name, status, language, topics and other
    columns optional; topics: comma-separated keys in one field, declared under [topics]).

    Never reactivates an unsubscribed, bounced or complained subscriber. Shows the first
    20 problem rows; --report FILE lists them all.

    \b
    Example:
      mailer subscribers import subscribers.csv --dry-run --report problems.csv
    """
    import contextlib
    import csv

    from mailer import files
    from mailer.errors import InputError
    from mailer.store.export import neutralize
    from mailer.store.imports import Vocabulary, import_csv

    if allow_erased:
        click.echo("warning: --allow-erased re-adds people who asked to be forgotten", err=True)
    store = _store(obj)
    with contextlib.ExitStack() as stack:
        sink = None
        if report_file is not None:
            try:
                out = stack.enter_context(
                    files.atomic(report_file, "w", encoding="utf-8", newline="")
                )
            except OSError as e:
                raise InputError(f"cannot write {report_file}: {e.strerror or e}") from None
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["line", "problem", "detail"])

            def sink(line: int, problem: str, detail: str) -> None:
                writer.writerow([line, problem, neutralize(detail)])

        settings = obj.settings()
        vocabulary = Vocabulary(frozenset(settings.topic_keys()), settings.offered_languages)
        r = import_csv(
            store.engine,
            file,
            dry_run=dry_run,
            allow_erased=allow_erased,
            sink=sink,
            vocabulary=vocabulary,
        )
    prefix = "would be " if dry_run else ""
    click.echo(
        f"{r.rows} rows: {prefix}added {r.added}, {prefix}updated {r.updated}, "
        f"unchanged {r.unchanged}, invalid {r.invalid}, duplicates {r.duplicates}"
    )
    if r.left_alone:
        click.echo(
            f"left alone {r.left_alone} unsubscribed, bounced or complained (never reactivated)"
        )
    if r.erased:
        click.echo(f"skipped {r.erased} erased at their request (--allow-erased to re-add)")
    shown = 0
    for line, reason in r.invalid_lines:
        if shown < 20:
            click.echo(f"  line {line}: invalid: {safe(reason)}", err=True)
            shown += 1
    for line, email in r.duplicate_lines:
        if shown < 20:
            click.echo(f"  line {line}: duplicate of an earlier row: {safe(email)}", err=True)
            shown += 1
    hidden = r.invalid + r.duplicates - shown
    if hidden:
        where = f"all are in {report_file}" if report_file else "--report FILE lists them all"
        click.echo(f"  ... and {hidden} more ({where})", err=True)
    if r.imported == 0 and r.invalid and not (r.left_alone or r.erased or r.duplicates):
        click.echo(f"Error: {file}: no valid rows; nothing imported", err=True)
        sys.exit(EXIT_ERROR)


@subscribers.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout).",
)
@click.option("--status", type=STATUS, help="Only this status.")
@WHERE
@pass_obj
def export(obj: Obj, output: Path | None, status: str | None, where: str | None) -> None:
    """Write the list as CSV (email,name,status,language,topics,...), streamed.

    \b
    Example:
      mailer subscribers export -o subscribers.csv
      mailer subscribers export --where 'topic:ai' -o ai-readers.csv
    """
    from mailer.store.export import write_csv

    rows = _store(obj).subscribers.iter(status, where=_where(obj, where))
    if output is None:
        write_csv(rows, sys.stdout)
        return
    from mailer import files
    from mailer.errors import InputError

    try:
        with files.atomic(output, "w", encoding="utf-8", newline="") as f:
            n = write_csv(rows, f)
    except OSError as e:
        raise InputError(f"cannot write {output}: {e.strerror or e}; check the path") from None
    click.echo(f"exported {n} subscribers to {output}", err=True)


@subscribers.command()
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--allow-erased", is_flag=True, help="Re-add someone who asked to be forgotten.")
@pass_obj
def add(obj: Obj, email: str, name: str, allow_erased: bool) -> None:
    """Add one active subscriber.

    \b
    Example:
      mailer subscribers add ada@example.com --name "Ada Lovelace"
    """
    s, created = _store(obj).subscribers.add(email, name, allow_erased=allow_erased)
    if created:
        click.echo(f"added {s.email}")
    else:
        click.echo(f"{s.email} is already on the list ({s.status}); left as it is")


@subscribers.command()
@click.argument("email")
@pass_obj
def unsubscribe(obj: Obj, email: str) -> None:
    """Mark a subscriber unsubscribed.

    \b
    Example:
      mailer subscribers unsubscribe ada@example.com
    """
    changed = _store(obj).subscribers.unsubscribe(email, "cli")
    click.echo(f"unsubscribed {email}" if changed else f"{email} was not active; unchanged")


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_obj
def resubscribe(obj: Obj, email: str, yes: bool) -> None:
    """Make a subscriber active again, whatever their status: the owner's explicit choice,
    recorded in their history. Use it only when the person asked you to.

    \b
    Example:
      mailer subscribers resubscribe ada@example.com --yes
    """
    store = _store(obj)
    s = store.subscribers.require(email)
    if s.status == SubscriberStatus.ACTIVE:
        click.echo(f"{s.email} is already active; unchanged")
        return
    confirm_or_refuse(f"{s.email} is {s.status}. Mail them again?", yes, "resubscribe")
    store.subscribers.resubscribe(email, "cli resubscribe")
    click.echo(f"resubscribed {s.email} (was {s.status})")


@subscribers.command("list")
@click.option("--status", type=STATUS, help="Only this status.")
@WHERE
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_obj
def list_(obj: Obj, status: str | None, where: str | None, fmt: str) -> None:
    """List subscribers.

    \b
    Example:
      mailer subscribers list --status active --format csv
      mailer subscribers list --where 'topic:ai and lang:en'
    """
    from mailer.store.export import write_csv, write_json

    rows = _store(obj).subscribers.iter(status, where=_where(obj, where))
    if fmt == "csv":
        write_csv(rows, sys.stdout)
    elif fmt == "json":
        write_json(rows, sys.stdout)
    else:
        settings = obj.settings()
        _table(rows, len(settings.offered_languages) > 1, bool(settings.topics))


def _table(rows, languages: bool, topics: bool) -> None:  # type: ignore[no-untyped-def]
    """Language and topics columns only for a list that has them to show."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    heads = ["email", "name", "status", *(["language"] * languages), *(["topics"] * topics)]
    table = Table(*heads, "created")
    for s in rows:
        # Text, not str: a name like "[/evil]" or "[link=...]" is shown, never read as markup.
        cells = [addresses.readable(s.email), s.name, s.status]
        cells += [s.language or ""] * languages + [",".join(s.topics)] * topics
        cells.append(s.created_at.strftime("%Y-%m-%d"))
        table.add_row(*(Text(safe(c)) for c in cells))
    Console().print(table)


@subscribers.command()
@click.option("--status", type=STATUS, help="Only this status.")
@WHERE
@pass_obj
def count(obj: Obj, status: str | None, where: str | None) -> None:
    """Print how many subscribers there are (and which: the status, the audience).

    \b
    Example:
      mailer subscribers count --status active --where 'topic:ai'
    """
    n = _store(obj).subscribers.count(status, where=_where(obj, where))
    click.echo(n)  # the number alone on stdout, for scripts; what it counts on stderr
    which = f"{status} subscribers" if status else "subscribers of every status"
    hint = "" if status else " (--status active: the ones who get mail)"
    audience = f" where {safe(where.strip())}" if where else ""
    click.echo(f"{which}{audience}{hint}", err=True)


def _where(obj: Obj, text: str | None):  # type: ignore[no-untyped-def]
    from mailer.selection import selection

    return selection(obj.settings(), text)


@subscribers.command()
@click.argument("email")
@click.option("--add", "added", multiple=True, metavar="KEY", help="Add this topic.")
@click.option("--remove", "removed", multiple=True, metavar="KEY", help="Remove this topic.")
@pass_obj
def topics(obj: Obj, email: str, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    """Show or change one subscriber's topics (declared under [topics] in mailer.toml).

    \b
    Example:
      mailer subscribers topics ada@example.com --add ai --remove crypto
    """
    from mailer.errors import InputError
    from mailer.store.preferences import Choices

    settings = obj.settings()
    declared = settings.topic_keys()
    for key in (*added, *removed):
        if key.strip().lower() not in declared:
            known = ", ".join(declared) or "none: declare them under [topics] in mailer.toml"
            raise InputError(f"unknown topic {key!r}; topics: {known}")
    store = _store(obj)
    s = store.subscribers.require(email)
    if added or removed:
        chosen = (set(s.topics) | {k.strip().lower() for k in added}) - {
            k.strip().lower() for k in removed
        }
        s, _ = store.preferences.change(s.id, Choices(topics=frozenset(chosen)), "owner:cli")
    click.echo(f"{s.email}: {', '.join(s.topics) or 'no topics'}")


@subscribers.command()
@click.argument("email")
@pass_obj
def show(obj: Obj, email: str) -> None:
    """Show one subscriber: status, consent and status history.

    \b
    Example:
      mailer subscribers show ada@example.com
    """
    store = _store(obj)
    s = store.subscribers.require(email)
    settings = obj.settings()
    click.echo(
        f"email:    {safe(addresses.readable(s.email))}\nname:     {safe(s.name)}\nstatus:   {s.status}"
    )
    click.echo(f"language: {s.language or settings.language + ' (the list’s)'}")
    click.echo(f"topics:   {', '.join(s.topics) or '-'}")
    if s.paused_until is not None:
        click.echo(f"paused:   until {s.paused_until:%Y-%m-%d %H:%M} UTC")
    click.echo(f"created:  {s.created_at:%Y-%m-%d %H:%M:%S}")
    click.echo(f"consent:  {safe(s.consent_source or '-')} at {s.consent_at or '-'}")
    for key, value in sorted(s.attributes.items()):
        click.echo(f"{safe(key)}: {safe(value)}")
    for h in store.subscribers.history(s.id):
        click.echo(
            f"{h['at']:%Y-%m-%d %H:%M:%S}  {h['old_status']} -> {h['new_status']}  "
            f"({safe(h['reason'])})"
        )


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_obj
def erase(obj: Obj, email: str, yes: bool) -> None:
    """Forget a person (GDPR): delete their data, keep a one-way hash of the address.

    A later import skips the address unless given --allow-erased.

    \b
    Example:
      mailer subscribers erase ada@example.com --yes
    """
    confirm_or_refuse(f"Erase {email} and all their data?", yes, "erase")
    _store(obj).subscribers.erase(email)
    click.echo(f"erased {email}")


@cli.group()
def db() -> None:
    """Database schema commands.

    \b
    Example:
      mailer db upgrade
    """


@db.command()
@pass_obj
def upgrade(obj: Obj) -> None:
    """Apply schema migrations (also done automatically on first use).

    \b
    Example:
      mailer db upgrade
    """
    from mailer.store import db as store_db

    settings = obj.settings()
    engine = store_db.create_engine(settings.resolved_database_url)
    try:
        start = store_db.upgrade(engine)
    finally:
        engine.dispose()
    if start == store_db.HEAD:
        click.echo(f"schema already at {store_db.HEAD}")
    else:
        click.echo(f"schema upgraded from {start or 'empty'} to {store_db.HEAD}")
