"""Where templates come from: the project's templates/ first, then the defaults we ship."""

from __future__ import annotations

from pathlib import Path

import jinja2

from mailer.content.i18n import install, translations
from mailer.errors import TemplateError

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def default_templates_dir() -> Path:
    # Installed wheels carry them inside the package; a source checkout has them at the top.
    installed = PACKAGE_DIR / "default_templates"
    return installed if installed.is_dir() else PACKAGE_DIR.parent / "templates"


def environment(project: Path | None, language: str = "en") -> jinja2.Environment:
    """Templates with `_()` in the newsletter's language (see i18n)."""

    dirs = []
    if project is not None and (project / "templates").is_dir():
        dirs.append(str(project / "templates"))
    dirs.append(str(default_templates_dir()))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        extensions=["jinja2.ext.i18n"],
        # Everything but the plain-text templates is markup: escape by default, so a
        # subscriber's name or an issue's subject can never inject HTML.
        autoescape=lambda name: name is None or not name.endswith((".txt.j2", ".css")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=True,
    )
    install(env, translations(language, project))
    return env


def render(env: jinja2.Environment, name: str, context: dict[str, object]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as e:
        where = f"{e.filename or name}:{e.lineno}"
        raise TemplateError(f"{where}: template syntax error: {e.message}") from None
    except jinja2.TemplateNotFound as e:
        raise TemplateError(
            f"template {e.name} not found in {', '.join(env.loader.searchpath)}"  # type: ignore[union-attr]
            "; run 'mailer init' to restore the defaults"
        ) from None
    except jinja2.UndefinedError as e:
        raise TemplateError(f"{_template_file(env, name)}: {e.message}") from None


def _template_file(env: jinja2.Environment, name: str) -> str:
    try:
        source = env.loader.get_source(env, name)  # type: ignore[union-attr]
        return source[1] or name
    except jinja2.TemplateNotFound:
        return name
