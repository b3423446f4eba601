from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mailer.cli import cli, register
from mailer.config import Settings, load_settings
from mailer.project import init_project

register()
SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"
PG_URL = os.environ.get("MAILER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MAILER_* setting from the developer's shell may leak into a test."""
    for key in list(os.environ):
        if key.startswith("MAILER_") and key not in (
            "MAILER_REQUIRE_POSTGRES",
            "MAILER_REQUIRE_BROWSER",
            "MAILER_REQUIRE_DOVECOT",
            "MAILER_TEST_POSTGRES",
        ):
            monkeypatch.delenv(key)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    # Tests never touch the network: issues with https://example.com images are not measured
    # (test_clients measures images served by a local server, with its own setting).
    monkeypatch.setenv("MAILER_IMAGE_SIZE_TIMEOUT", "0")


@pytest.fixture
def sample_issue() -> Path:
    path = SAMPLES / "ai-daily-digest.md"
    if not path.exists():
        pytest.skip(f"the shared sample issue is not at {path}")
    return path


def _postgres_available() -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(
            PG_URL, connect_args={"connect_timeout": 3}, poolclass=sa.NullPool
        )
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as e:  # any reason at all: say it
        return f"PostgreSQL at {PG_URL} is not reachable ({type(e).__name__}: {str(e).splitlines()[0]})"


_PG_PROBLEM: list[str | None] = []


def postgres_url() -> Iterator[str]:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_available())
    problem = _PG_PROBLEM[0]
    if problem:
        if os.environ.get("MAILER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{problem}, and MAILER_REQUIRE_POSTGRES=1")
        pytest.skip(f"{problem}; set MAILER_REQUIRE_POSTGRES=1 to make this an error")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every store test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailer.db'}"
    else:
        yield from postgres_url()


def make_project(tmp_path: Path, db_url: str) -> Path:
    """A scaffolded project with settings complete enough to send."""
    root = tmp_path / "letter"
    init_project(root)
    # No welcome unless a test writes one: confirmations would otherwise mail it too.
    (root / "issues" / "welcome.md").unlink()
    toml = root / "mailer.toml"
    text = toml.read_text()
    text = text.replace('database_url = "sqlite:///mailer.db"', f'database_url = "{db_url}"')
    text = text.replace(
        'base_url = "http://127.0.0.1:8000"', 'base_url = "https://news.example.com"'
    )
    # Pages and footers in English, so assertions read as the code does; the zh-CN
    # catalog has tests of its own (test_weekly).
    text = text.replace('language = "zh-CN"', 'language = "en"')
    # Sign-ups without the browser's proof of work: the tests whose subject it is (the
    # sign-up's defences) turn it on and solve it.
    if "signup_proof_of_work" not in text:
        text += "signup_proof_of_work = 0\n"
    toml.write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Path:
    return make_project(tmp_path, db_url)


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Path:
    """For tests whose subject is not the store: SQLite only."""
    return make_project(tmp_path, f"sqlite:///{tmp_path / 'mailer.db'}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module whose subject is not the store says SQLITE_ONLY = True: its tests run on
    SQLite alone (store tests run on both databases)."""
    if "db_url" in metafunc.fixturenames:
        databases: list[Any] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
        if getattr(metafunc.module, "SQLITE_ONLY", False):
            databases = ["sqlite"]
        metafunc.parametrize("db_url", databases, indirect=True)


@pytest.fixture
def settings(request: pytest.FixtureRequest, project: Path) -> Settings:
    """The project's settings, with what the test module's SETTINGS adds."""
    return load_settings(project, getattr(request.module, "SETTINGS", None))


@pytest.fixture
def store(settings: Settings) -> Iterator[Any]:
    from mailer.store import open_store

    with open_store(settings) as s:
        yield s


@pytest.fixture
def client(settings: Settings, store: Any) -> Iterator[Any]:
    """mailer serve in process, its background thread off: tests drain the mail queue."""
    from starlette.testclient import TestClient

    from mailer.web.serve import create_app

    app = create_app(settings, store, background=False)
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as c:
        yield c


class Cli:
    def __init__(self, project: Path) -> None:
        self.project = project
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return self.runner.invoke(
            cli,
            ["--project", str(self.project), *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )


@pytest.fixture
def run(project: Path) -> Cli:
    return Cli(project)


def write(path: Path, text: str, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=kw.get("encoding", "utf-8"))
    return path


@pytest.fixture
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("MAILER_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "no chromium on PATH, and MAILER_REQUIRE_BROWSER=1 (apt-get install chromium)"
            )
        pytest.skip(
            "no chromium on PATH (apt-get install chromium); set MAILER_REQUIRE_BROWSER=1 to make this an error"
        )
    return exe


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it received."""
    from tests.servers import SmtpServer

    with SmtpServer() as server:
        yield server


@pytest.fixture
def imap() -> Iterator[Any]:
    """A real IMAP server (Dovecot) with an empty mailbox."""
    from tests.mailservers import dovecot

    with dovecot() as server:
        yield server


@pytest.fixture
def sendgrid() -> Iterator[Any]:
    """A local server that speaks SendGrid's v3 API."""
    from tests.servers import SendGridServer

    with SendGridServer() as server:
        yield server


def wait_until(done: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    """Poll until `done()` is true: waits on what the test observes, never on a timer
    standing in for an event. Fails, naming `what`, only after a generous deadline."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.01)
