"""The words mailer itself puts around an issue (footer, pages, confirmation mail), in the
newsletter's `language`, from gettext catalogs.

Catalogs are plain .po files read by Babel and compiled in memory: `mailer/locale/zh_CN.po`
ships with mailer, a third language is one more file there, and a project's own
`locale/<lang>.po` overrides any string (its entries win; the rest fall through to ours,
then to the English in the code).

A project's catalog is checked when it is read, so a slip in it is one line naming the
file, not a page that fails later: every translation keeps its source string's `%(name)s`
and `%s` placeholders, and the Plural-Forms header must parse. In templates a translation
is text like any other: escaped where the page is HTML, so a catalog cannot carry markup.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.errors import ConfigError

if TYPE_CHECKING:
    import jinja2
    from babel.messages.catalog import Catalog

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
_CACHE: dict[tuple[str, ...], gettext.NullTranslations] = {}


def candidates(language: str) -> list[str]:
    """File stems to try for a language tag: zh-CN → zh_CN, zh; en-GB → en_GB, en."""
    tag = language.replace("-", "_")
    base = tag.split("_")[0]
    return [tag] if tag == base else [tag, base]


def translations(language: str, project: Path | None = None) -> gettext.NullTranslations:
    files = [
        p
        for d in ((project / "locale") if project else None, LOCALE_DIR)
        if d is not None
        for stem in candidates(language)
        if (p := d / f"{stem}.po").is_file()
    ]
    key = (language, *(f"{p}:{p.stat().st_mtime_ns}" for p in files))
    found = _CACHE.get(key)
    if found is None:
        found = gettext.NullTranslations()
        for path in reversed(files):  # the last added is asked last: ours under the project's
            t = _compile(path)
            t.add_fallback(found)
            found = t
        _CACHE[key] = found
    return found


def _compile(path: Path) -> gettext.GNUTranslations:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import PoFileError, read_po

    try:
        with path.open("rb") as f:
            catalog = read_po(f, abort_invalid=True)
    except (PoFileError, OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable .po catalog ({e}); fix or remove it") from None
    _check_placeholders(path, catalog)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    try:
        return gettext.GNUTranslations(buf)
    except (ValueError, SyntaxError, RecursionError, OverflowError) as e:
        raise ConfigError(
            f"{path}: the Plural-Forms header is not valid ({e}); "
            'write it as gettext does, e.g. "nplurals=2; plural=(n != 1);"'
        ) from None


# A printf-style conversion as Python's % operator reads it; "%%" is a literal percent.
_PLACEHOLDER = re.compile(
    r"%(?:\((?P<name>[^)]*)\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<kind>.)"
)


def placeholders(text: str) -> tuple[list[str], list[str]]:
    """The named (`%(name)s`) and positional (`%s`) conversions in a format string."""
    named: list[str] = []
    positional: list[str] = []
    for m in _PLACEHOLDER.finditer(text):
        if m.group("kind") == "%" and m.group("name") is None:
            continue
        if m.group("name") is not None:
            named.append(f"%({m.group('name')}){m.group('kind')}")
        else:
            positional.append(f"%{m.group('kind')}")
    return named, positional


def _check_placeholders(path: Path, catalog: Catalog) -> None:
    """Every translation formats with the same values as its source string: a missing,
    renamed or extra placeholder would raise (a 503) or drop a value when the page is made."""
    for message in catalog:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple | list) else (message.id,)
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        named = [set(placeholders(i)[0]) for i in ids]
        positional = [placeholders(i)[1] for i in ids]
        for text in strings:
            if not text:
                continue
            got_named, got_positional = placeholders(text)
            # A plural form may leave the count out ("one week"), never add a value.
            fits = (
                any(set(got_named) <= n for n in named)
                if len(ids) > 1
                else set(got_named) == named[0]
            ) and got_positional in positional
            if not fits:
                want = " ".join(sorted(named[-1]) + positional[-1]) or "none"
                have = " ".join(sorted(set(got_named)) + got_positional) or "none"
                line = f":{message.lineno}" if message.lineno else ""
                raise ConfigError(
                    f"{path}{line}: the translation of {ids[0]!r} has placeholders {have}, "
                    f"the source string {want}; make them match"
                )


def install(env: jinja2.Environment, t: gettext.NullTranslations) -> None:
    """`_()`/`gettext`/`ngettext` in templates, with the translation escaped where the
    template autoescapes (Jinja's own newstyle gettext marks a translation as safe markup,
    so a catalog could put `<script>` into a page)."""
    from jinja2 import pass_context
    from markupsafe import escape

    def escaped(func: Callable[..., str]) -> Callable[..., str]:
        @pass_context
        def call(context: Any, *args: Any) -> str:
            rv = func(*args)
            return escape(rv) if context.eval_ctx.autoescape else rv

        return call

    env.install_gettext_callables(  # type: ignore[attr-defined]
        escaped(t.gettext), escaped(t.ngettext), newstyle=True
    )
