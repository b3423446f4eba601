"""The command line under careless and hostile input: one line naming the problem and the
fix, exit 1, no traceback, nothing half-written."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.config import load_settings
from mailer.content.issue import parse_issue
from mailer.content.render import Renderer
from mailer.errors import ConfigError, InputError, TemplateError
from mailer.store import open_url
from mailer.store.imports import import_csv
from tests.conftest import Cli, wait_until, write

ISSUE = "issues/2026-11-20-weekly.md"


def one_line_error(r, starts: str) -> None:  # type: ignore[no-untyped-def]
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and lines[0].startswith("Error: " + starts), r.output


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,value,error",
    [
        (
            "base_url",
            "https://x.example\r\nBcc: all@evil.example",
            "setting base_url from the command line contains U+000D (a line break",
        ),
        (
            "base_url",
            "notaurl",
            'setting base_url from the command line must be an absolute http:// or https:// URL; e.g. base_url = "https://news.example.com"',
        ),
        ("secret_key", "x", "setting secret_key from the command line is too short"),
        (
            "rate_limit",
            "nan",
            "setting rate_limit from the command line must be a number, got 'nan'",
        ),
        (
            "rate_limit",
            "-1",
            "setting rate_limit from the command line must be between 0 and 1000000",
        ),
        (
            "smtp_port",
            "99999",
            "setting smtp_port from the command line must be between 1 and 65535",
        ),
        ("smtp_timeout", "0", "setting smtp_timeout from the command line must be more than 0"),
        (
            "from_email",
            "not an email",
            "setting from_email from the command line is not one email address",
        ),
        (
            "reply_to",
            "a@example.com, b@example.com",
            "setting reply_to from the command line is not one email address",
        ),
        (
            "batch_size",
            "1.9",
            "setting batch_size from the command line must be a whole number, got '1.9'",
        ),
        (
            "from_name",
            "News\nBcc: x@example.com",
            "setting from_name from the command line contains U+000A (a line break",
        ),
        ("language", "zh_CN; x", "setting language from the command line must be a language tag"),
        (
            "postal_address",
            "1 Main St\x01",
            "setting postal_address from the command line contains U+0001",
        ),
        (
            "postal_address",
            "1 Main\x0bSt",
            "setting postal_address from the command line contains U+000B",
        ),
        (
            "postal_address",
            "1 Main\x0cSt",
            "setting postal_address from the command line contains U+000C",
        ),
        (
            "newsletter_name",
            "News\ufffe",
            "setting newsletter_name from the command line contains U+FFFE (a noncharacter)",
        ),
        (
            "from_name",
            "News\U0010ffff",
            "setting from_name from the command line contains U+10FFFF",
        ),
        ("from_name", "News\ufdd0", "setting from_name from the command line contains U+FDD0"),
        (
            "smtp_password",
            "pa\x1bss",
            "setting smtp_password from the command line contains U+001B",
        ),
        (
            "dkim_private_key",
            "-----BEGIN\x00",
            "setting dkim_private_key from the command line contains U+0000",
        ),
        ("languages", "en,zh-CN\x01", "setting languages from the command line contains U+0001"),
        (
            "base_url",
            "https://news.example.com/a>b",
            "setting base_url from the command line holds '>'",
        ),
        (
            "base_url",
            "https://news.example.com/a<b",
            "setting base_url from the command line holds '<'",
        ),
        (
            "base_url",
            'https://news.example.com/"x',
            "setting base_url from the command line holds '\"'",
        ),
        (
            "base_url",
            "https://news.example.com/{x}",
            "setting base_url from the command line holds '{'",
        ),
        (
            "base_url",
            "https://news.example.com/a\\b",
            "setting base_url from the command line holds '\\\\'",
        ),
        (
            "base_url",
            "https://news.example.com/a`b",
            "setting base_url from the command line holds '`'",
        ),
        (
            "logo_url",
            "https://news.example.com/a>.png",
            "setting logo_url from the command line holds '>'",
        ),
        (
            "dkim_domain",
            "exa mple.com",
            "setting dkim_domain from the command line is not a domain name",
        ),
        (
            "dkim_domain",
            "example.com;x=y",
            "setting dkim_domain from the command line is not a domain name",
        ),
        (
            "dkim_domain",
            "localhost",
            "setting dkim_domain from the command line is not a domain name",
        ),
        ("dkim_selector", "a;b", "setting dkim_selector from the command line must be DNS labels"),
        ("dkim_selector", "-a", "setting dkim_selector from the command line must be DNS labels"),
        ("provder", "smtp", "--set: unknown setting 'provder'; did you mean 'provider'?"),
    ],
)
def test_every_bad_setting_is_one_line(run: Cli, key: str, value: str, error: str) -> None:
    r = run("--set", f"{key}={value}", "subscribers", "count")
    one_line_error(r, error)


def test_a_float_in_the_toml_for_a_whole_number_is_refused(run: Cli) -> None:
    toml = run.project / "mailer.toml"
    toml.write_text(toml.read_text().replace("batch_size = 1000", "batch_size = 1.9"))
    one_line_error(
        run("subscribers", "count"), "setting batch_size from mailer.toml must be a whole number"
    )


def test_international_names_are_encoded_not_crashed(run: Cli, project: Path) -> None:
    s = load_settings(
        project, {"from_email": "news@bücher.de", "base_url": "https://bücher.de/news/"}
    )
    assert s.from_email == "news@xn--bcher-kva.de" and s.base_url == "https://xn--bcher-kva.de/news"
    run("subscribers", "add", "ann@example.com")
    r = run("--set", "from_email=news@bücher.de", "send", str(project / ISSUE), "--yes")
    assert r.exit_code == 0, r.output


def test_a_list_needs_https_the_outbox_and_tests_may_use_localhost(run: Cli, project: Path) -> None:
    run("subscribers", "add", "ann@example.com")
    local = {"MAILER_BASE_URL": "http://127.0.0.1:8000"}
    r = run(
        "send",
        str(project / ISSUE),
        "--yes",
        env={**local, "MAILER_PROVIDER": "smtp", "MAILER_SMTP_HOST": "127.0.0.1"},
    )
    one_line_error(r, "base_url 'http://127.0.0.1:8000' is not https://")
    r = run(
        "send", str(project / ISSUE), "--yes", env={"MAILER_BASE_URL": "http://news.example.com"}
    )
    one_line_error(r, "base_url 'http://news.example.com' is not https://")
    r = run("send", str(project / ISSUE), "--yes", env=local)
    assert (
        r.exit_code == 0
        and "warning: base_url http://127.0.0.1:8000 only works on this machine" in r.output
    )


def test_unusable_project_files_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "mailer.toml").mkdir()
    one_line_error(
        Cli(tmp_path)("subscribers", "count"), f"{tmp_path / 'mailer.toml'}: cannot read it"
    )
    other = tmp_path / "p2"
    other.mkdir()
    (other / "not.db").write_bytes(b"this is not a database, just text" * 100)
    r = Cli(other)("--database-url", f"sqlite:///{other / 'not.db'}", "subscribers", "count")
    one_line_error(r, "cannot open the database: file is not a database; check database_url")


def test_outputs_that_cannot_be_written_are_one_line(run: Cli, project: Path) -> None:
    one_line_error(
        run("subscribers", "export", "-o", "/nonexistent/dir/x.csv"),
        "cannot write /nonexistent/dir/x.csv: No such file or directory",
    )
    blocker = write(project / "afile", "x")
    r = run("build", str(project / ISSUE), "-o", str(blocker / "x"))
    one_line_error(r, f"cannot write the build to {blocker / 'x'}")


def test_builds_are_readable_and_exports_carry_the_zone(run: Cli, project: Path) -> None:
    r = run("build", str(project / ISSUE), "-o", str(project / "build"))
    assert r.exit_code == 0
    for f in (project / "build").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o044 == 0o044, f  # group/other can read
    run("subscribers", "add", "ann@example.com")
    rows = list(csv.DictReader(io.StringIO(run("subscribers", "export").output)))
    assert rows[0]["created_at"].endswith("+00:00") and rows[0]["consent_at"].endswith("+00:00")


def test_destructive_commands_refuse_without_a_terminal(run: Cli) -> None:
    run("subscribers", "add", "ann@example.com")
    one_line_error(
        run("subscribers", "erase", "ann@example.com"),
        "refusing to erase without confirmation: pass --yes",
    )
    assert run("subscribers", "count").stdout == "1\n"


def test_a_template_without_the_unsubscribe_link_or_address_is_never_sent(
    run: Cli, project: Path
) -> None:
    run("subscribers", "add", "ann@example.com")
    mjml = project / "templates" / "newsletter.mjml.j2"
    original = mjml.read_text()
    mjml.write_text(
        original.replace(
            '<a href="{{ unsubscribe_url }}" style="color:#555555;">{{ _("Unsubscribe") }}</a>', ""
        )
    )
    one_line_error(
        run("send", str(project / ISSUE), "--yes"),
        f"{project / ISSUE}: the HTML part has no {{{{ unsubscribe_url }}}} link",
    )
    mjml.write_text(original.replace("{{ postal_address }}", ""))
    one_line_error(
        run("send", str(project / ISSUE), "--yes"),
        f"{project / ISSUE}: the HTML part does not show the postal_address",
    )
    assert not (project / "outbox").exists()


# -- CSV files ---------------------------------------------------------------------------


def test_exports_neutralize_formulas_and_round_trip(run: Cli, project: Path) -> None:
    evil = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["email", "name"])
    w.writerows([f"p{i}@example.com", n] for i, n in enumerate(evil))
    path = write(project / "in.csv", buf.getvalue())
    assert run("subscribers", "import", str(path)).exit_code == 0
    out = run("subscribers", "export").output
    names = [r["name"] for r in csv.DictReader(io.StringIO(out))]
    assert names == ["'" + n for n in evil]
    as_json = json.loads(run("subscribers", "list", "--format", "json").output)
    assert [s["name"] for s in as_json] == evil  # JSON keeps the raw value
    listed = run("subscribers", "list", "--format", "csv").output
    assert "'=HYPERLINK" in listed
    again = write(project / "again.csv", out)
    r = run("subscribers", "import", str(again))
    assert r.exit_code == 0 and "updated 0, unchanged 4" in r.output, r.output


def test_a_huge_field_does_not_change_how_the_rest_is_read(run: Cli, project: Path) -> None:
    path = project / "big.csv"
    with path.open("w") as f:
        f.write(
            'email,name\nann@example.com,"'
            + "x" * (2 << 20)
            + "\ninj1@example.com,Evil\ninj2@example.com,Evil\n"
            + '"\nbob@example.com,Bob\n'
        )
    r = run("subscribers", "import", str(path))
    assert r.exit_code == 0 and "line 2: invalid: a field is over 1 MiB" in r.output, r.output
    emails = sorted(
        s["email"] for s in json.loads(run("subscribers", "list", "--format", "json").output)
    )
    assert emails == ["bob@example.com"]


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16LE"), ("utf-32", "UTF-32LE")])
def test_utf16_and_utf32_are_named(run: Cli, project: Path, encoding: str, name: str) -> None:
    path = project / "wide.csv"
    path.write_bytes("email\nann@example.com\n".encode(encoding))
    one_line_error(
        run("subscribers", "import", str(path)),
        f"{path}: is {name} (it starts with a {name[:6]} byte-order mark); convert it with iconv -f {name[:6]} -t UTF-8",
    )


def test_invalid_rows_show_twenty_and_the_report_has_all(run: Cli, project: Path) -> None:
    rows = "".join(f"bad{i}\n" for i in range(30)) + "ok@example.com\n"
    path = write(project / "l.csv", "email\n" + rows)
    report = project / "problems.csv"
    r = run("subscribers", "import", str(path), "--report", str(report))
    assert r.exit_code == 0
    assert (
        r.output.count(": invalid: ") == 20 and f"... and 10 more (all are in {report})" in r.output
    )
    with report.open() as f:
        listed = list(csv.DictReader(f))
    assert len(listed) == 30 and listed[0]["line"] == "2" and listed[0]["problem"] == "invalid"


def test_concurrent_imports_both_succeed(project: Path, db_url: str) -> None:
    files = []
    for n in range(2):  # overlapping halves
        files.append(
            write(
                project / f"c{n}.csv",
                "email\n" + "".join(f"u{i}@example.com\n" for i in range(n * 300, n * 300 + 600)),
            )
        )
    results, errors = [], []
    start = threading.Barrier(2)

    def one(path: Path) -> None:
        try:  # any failure, opening the store included, is reported, never a hang
            with open_url(db_url) as store:
                start.wait(timeout=120)
                results.append(import_csv(store.engine, path, chunk_size=50))
        except Exception as e:
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=one, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2, errors
    with open_url(db_url) as store:
        assert store.subscribers.count() == 900
    assert sum(r.added for r in results) == 900


def test_terminal_output_shows_user_text_never_runs_it(run: Cli, project: Path) -> None:
    path = write(
        project / "t.csv",
        'email,name,note\nann@example.com,[/evil],"\x1b]0;owned\x07\x1b[2Kforged line"\nbob@example.com,[link=https://evil.example]click[/link],x\n',
    )
    assert run("subscribers", "import", str(path)).exit_code == 0
    listed = run("subscribers", "list")
    assert (
        listed.exit_code == 0
        and "[/evil]" in listed.output
        and "[link=https://evil.example]" in listed.output
    )
    shown = run("subscribers", "show", "ann@example.com").output
    assert "\x1b" not in shown and "\\x1b]0;owned\\x07\\x1b[2Kforged line" in shown


# -- issue text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,error",
    [
        ('---\nsubject: "A\x0bB"\n---\nhi\n', "x.md:2: contains the control character U+000B"),
        ("# T\n\nbo\x1bdy\n", "x.md:3: contains the control character U+001B"),
        ("# T\n\nbo\x0cdy\n", "x.md:3: contains the control character U+000C"),
        (
            '---\nsubject: "x __MAILER_EMAIL__"\n---\nhi\n',
            "x.md: subject: contains the reserved text __MAILER_EMAIL__",
        ),
        (
            '---\npreheader: "__MAILER_NAME_TEXT__"\n---\n# T\n',
            "x.md: preheader: contains the reserved text",
        ),
        ('---\nslug: "abc\\n"\n---\n# T\n', "x.md: slug 'abc\\n' must be letters"),
        (
            "# T\n\n" + "".join("  " * i + f"- i{i}\n" for i in range(19)),
            "x.md:21: lists or quotes nest too deep",
        ),
        ("# T\n\n" + ">" * 38 + " deep\n", "x.md:3: lists or quotes nest too deep"),
    ],
)
def test_issue_text_edges_are_named(text: str, error: str) -> None:
    with pytest.raises(InputError) as e:
        parse_issue(text, Path("x.md"))
    assert str(e.value).startswith(error)


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_line_separators_are_line_breaks(sqlite_project: Path, sep: str) -> None:
    run = Cli(sqlite_project)
    path = write(
        sqlite_project / "issues" / "sep.md",
        f'---\nsubject: "A{sep}B"\n---\n# T\n\nline one{sep}line two\n',
    )
    r = run("build", str(path), "-o", str(sqlite_project / "b"))
    assert r.exit_code == 0, r.output
    assert "line one" in (sqlite_project / "b" / "sep.txt").read_text()


# -- property tests ----------------------------------------------------------------------


@hsettings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.binary(max_size=400))
def test_any_csv_bytes_import_or_fail_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    tmp = tmp_path_factory.mktemp("csvbytes")
    path = tmp / "x.csv"
    path.write_bytes(b"email,name\n" + data)
    with open_url(f"sqlite:///{tmp / 'db.sqlite'}") as store:
        try:
            r = import_csv(store.engine, path)
        except InputError as e:
            assert "\n" not in str(e)
            return
        assert store.subscribers.count() == r.added


def test_a_surrogate_from_the_environment_is_one_line(tmp_path: Path) -> None:
    # Undecodable bytes in an environment variable arrive as lone surrogates.
    bad = b"News \xff".decode("utf-8", "surrogateescape")
    with pytest.raises(
        ConfigError, match=r"^setting newsletter_name from MAILER_NEWSLETTER_NAME contains U\+DCFF"
    ):
        load_settings(tmp_path, environ={"MAILER_NEWSLETTER_NAME": bad})


TEXT_KEYS = ["postal_address", "newsletter_name", "from_name", "list_id", "reply_to"]


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(key=st.sampled_from(TEXT_KEYS), value=st.text(max_size=30))
def test_a_text_setting_that_loads_renders(key: str, value: str) -> None:
    """Whatever a text setting holds is refused at load or renders: never an MJML error."""
    base = {"image_size_timeout": 0, "postal_address": "1 Main St"}
    try:
        settings = load_settings(Path("/nonexistent-project"), {**base, key: value}, environ={})
    except ConfigError as e:
        assert str(e).startswith(f"setting {key} from the command line ") and "\n" not in str(e)
        return
    issue = parse_issue("# Hello\n\nText.\n", Path("x.md"))
    Renderer(settings).render(issue, web=True)


SETTING_KEYS = [
    "base_url",
    "from_email",
    "reply_to",
    "secret_key",
    "smtp_port",
    "rate_limit",
    "batch_size",
    "language",
    "list_id",
    "sendgrid_api_host",
    "from_name",
]


@hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(key=st.sampled_from(SETTING_KEYS), value=st.text(max_size=60))
def test_any_setting_value_loads_or_is_one_line(
    tmp_path_factory: pytest.TempPathFactory, key: str, value: str
) -> None:
    try:
        load_settings(tmp_path_factory.getbasetemp(), {key: value}, environ={})
    except ConfigError as e:
        assert str(e).startswith(f"setting {key} from the command line ") and "\n" not in str(e)


@hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(text=st.text(max_size=300))
def test_any_issue_text_renders_or_is_one_line(text: str) -> None:
    # never fetch: a generated ![x](http://...) must not reach the network
    settings = load_settings(Path("/nonexistent-project"), {"image_size_timeout": 0}, environ={})
    try:
        issue = parse_issue(text, Path("x.md"))
        Renderer(settings).render(issue)
    except (InputError, TemplateError) as e:
        assert "\n" not in str(e)


# -- preview ------------------------------------------------------------------------------


def test_preview_answers_only_its_own_host(sqlite_project: Path) -> None:
    from starlette.testclient import TestClient

    from mailer.web.preview import Previewer, create_preview_app

    previewer = Previewer(load_settings(sqlite_project), sqlite_project / ISSUE)
    app = create_preview_app(previewer, hosts=("127.0.0.1",))
    with TestClient(app, base_url="http://127.0.0.1:8025") as c:
        assert c.get("/issue/2026-11-20-weekly.md/info.json").status_code == 200
        assert (
            c.get(
                "/issue/2026-11-20-weekly.md/info.json", headers={"Host": "localhost:8025"}
            ).status_code
            == 200
        )
        r = c.get("/issue/2026-11-20-weekly.md/info.json", headers={"Host": "rebound.evil.example"})
        assert r.status_code == 400


@pytest.mark.parametrize("presses", [1, 2])
def test_preview_stops_at_once_on_ctrl_c_with_a_stream_open(
    sqlite_project: Path, presses: int
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailer",
            "--project",
            str(sqlite_project),
            "preview",
            str(sqlite_project / ISSUE),
            "--no-open",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "previewing ... at http://..." once it listens
        wait_until(lambda: _accepts(port), "the preview to accept connections")
        stream = socket.create_connection(("127.0.0.1", port), timeout=10)  # held open
        stream.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b"data: 0" in stream.recv(4096) or b"data: 0" in stream.recv(4096)
        proc.send_signal(signal.SIGINT)
        if presses == 2:  # an impatient second Ctrl-C: a quiet exit, no tracebacks
            proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        proc.wait(timeout=20)
        stopped_in = time.monotonic() - start
        stream.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err_bytes = proc.communicate()
    err = err_bytes.decode()
    assert "Traceback" not in err and "CancelledError" not in err, err
    print(f"preview stopped {stopped_in:.2f}s after Ctrl-C")
    assert proc.returncode in (0, 130, -signal.SIGINT)


def test_a_web_signup_during_an_import_both_succeed(project: Path, db_url: str) -> None:
    """Whatever the interleaving: no error on either side, every address once."""
    from mailer.models import SubscriberStatus

    path = write(
        project / "big.csv", "email\n" + "".join(f"u{i}@example.com\n" for i in range(2000))
    )
    errors: list[BaseException] = []
    result = []

    def importer() -> None:
        with open_url(db_url) as store:
            try:
                result.append(import_csv(store.engine, path, chunk_size=50))
            except BaseException as e:
                errors.append(e)

    thread = threading.Thread(target=importer)
    with open_url(db_url) as store:
        thread.start()
        for i in range(1999, 1899, -1):  # sign-ups for addresses the import reaches last
            store.subscribers.add(
                f"u{i}@example.com", status=SubscriberStatus.PENDING, source="web:subscribe"
            )
        thread.join()
        assert not errors and store.subscribers.count() == 2000
        pending = store.subscribers.count("pending")
    r = result[0]
    assert r.added + r.unchanged == 2000 and r.added == 2000 - pending


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        return True
    except OSError:
        return False


def test_a_web_font_url_keeps_its_query(tmp_path: Path) -> None:
    url = "https://fonts.googleapis.com/css2?family=Inter:wght@400;700&display=swap"
    settings = load_settings(tmp_path, {"web_font": "Inter", "web_font_url": url}, environ={})
    assert settings.web_font_url == url


def test_an_internationalized_address_is_shown_both_ways(run: Cli) -> None:
    assert run("subscribers", "add", "ann@bücher.example").exit_code == 0
    shown = run("subscribers", "show", "ann@xn--bcher-kva.example").output
    assert "email:    ann@bücher.example (ann@xn--bcher-kva.example)" in shown
    listed = run("subscribers", "list").output
    assert "bücher.example" in listed and "xn--bcher-kva" in listed
    exported = run("subscribers", "export").output
    assert "ann@xn--bcher-kva.example" in exported and "bücher" not in exported  # data: ASCII
