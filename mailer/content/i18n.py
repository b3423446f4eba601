"""The words mailer itself puts around an issue (footer, pages, confirmation mail), in the
newsletter's `language`, from gettext catalogs.

Catalogs are plain .po files read by Babel and compiled in memory: `mailer/locale/zh_CN.po`
ships with mailer, a third language is one more file there, and a project's own
`locale/<lang>.po` overrides any string (its entries win; the rest fall through to ours,
then to the English in the code).
"""

from __future__ import annotations

import gettext
from io import BytesIO
from pathlib import Path

from mailer.errors import ConfigError

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
    except (PoFileError, OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a readable .po catalog ({e}); fix or remove it") from None
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)
