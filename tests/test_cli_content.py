"""mailer init and mailer build, through the CLI; and the built email in a real browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailer.cli import cli
from tests.conftest import Cli, write


@pytest.fixture
def run(sqlite_project: Path) -> Cli:
    return Cli(sqlite_project)


def test_init_scaffolds_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "new"
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    for name in (
        "mailer.toml",
        "templates/newsletter.mjml.j2",
        "templates/newsletter.txt.j2",
        "issues/2026-11-20-weekly.md",
        "subscribers.csv.example",
    ):
        assert (target / name).is_file(), name
    toml = (target / "mailer.toml").read_text()
    assert 'secret_key = "' in toml and "{secret_key}" not in toml
    (target / "templates" / "email.css").write_text("/* mine */")
    again = runner.invoke(cli, ["init", str(target)])
    assert again.exit_code == 0
    assert (target / "templates" / "email.css").read_text() == "/* mine */"
    assert (target / "mailer.toml").read_text() == toml
    assert f"kept    {target / 'mailer.toml'} (exists)" in again.output
    other = tmp_path / "other"
    runner.invoke(cli, ["init", str(other)])
    assert (other / "mailer.toml").read_text() != toml  # a fresh secret per project


def test_build_writes_html_and_text_and_reports(
    run: Cli, sqlite_project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run("build", str(sqlite_project / "issues" / "2026-11-20-weekly.md"), "-o", str(out))
    assert result.exit_code == 0, result.output
    html = (out / "2026-11-20-weekly.html").read_bytes()
    text = (out / "2026-11-20-weekly.txt").read_bytes()
    assert f"{out / '2026-11-20-weekly.html'}  {len(html) / 1024:.1f} KB" in result.output
    assert "subject: 本周 AI 周报 · Weekly roundup: small models catch up" in result.output
    again = run("build", str(sqlite_project / "issues" / "2026-11-20-weekly.md"), "-o", str(out))
    assert again.exit_code == 0
    assert (out / "2026-11-20-weekly.html").read_bytes() == html  # same input, same bytes
    assert (out / "2026-11-20-weekly.txt").read_bytes() == text


def test_build_sample_is_under_gmail_limit(run: Cli, sample_issue: Path, tmp_path: Path) -> None:
    result = run("build", str(sample_issue), "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "ai-daily-digest.html").read_text()
    text = (tmp_path / "ai-daily-digest.txt").read_text()
    assert len(html.encode()) < 102 * 1024
    for url in (
        "https://openai.com/index/introducing-gpt-5-3-codex-spark/",
        "https://theshamblog.com/an-ai-agent-published-a-hit-piece-on-me/",
        "https://news.ycombinator.com/item?id=46991591",
    ):
        assert url in text
        assert url in html.replace("&amp;", "&")


def test_build_warns_from_75_and_refuses_from_95_kb(run: Cli, tmp_path: Path) -> None:
    def build(items: int):  # type: ignore[no-untyped-def]
        issue = write(
            tmp_path / f"i{items}.md",
            "# Big\n\n"
            + "".join(f"- item {i} [link](https://example.com/{i})\n" for i in range(items)),
        )
        return run("build", str(issue), "-o", str(tmp_path / "out"))

    sizes = {}
    for items in range(100, 1400, 50):
        r = build(items)
        m = re.search(r"\.html\s+([\d.]+) KB", r.output) or re.search(
            r"HTML is ([\d.]+) KB", r.output
        )
        assert m is not None, r.output
        sizes[items] = (float(m.group(1)), r.exit_code, "warning: HTML is" in r.output)
    for kb, code, warned in sizes.values():
        assert code == (1 if kb > 95 else 0), sizes
        assert warned == (75 < kb <= 95), sizes
    assert any(75 < kb <= 95 for kb, _, _ in sizes.values()) and any(
        kb > 95 for kb, _, _ in sizes.values()
    )


def test_build_refuses_html_gmail_would_clip(run: Cli, tmp_path: Path) -> None:
    issue = write(
        tmp_path / "huge.md",
        "# Huge\n\n"
        + "".join(f"- **item {i}** [link](https://example.com/{i})\n" for i in range(2500)),
    )
    result = run("build", str(issue), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert (
        "KB; Gmail clips at 102 KB and mailer keeps a margin (at most 95 KB): shorten the issue or split it in two"
        in result.output
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_build_warns_when_close_to_the_limit(run: Cli, tmp_path: Path) -> None:
    issue = write(
        tmp_path / "big.md",
        "# Big\n\n"
        + "".join(f"- **item {i}** [link](https://example.com/{i})\n" for i in range(330)),
    )
    result = run("build", str(issue), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "close to the 95 KB mailer allows (Gmail clips at 102 KB)" in result.output


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: p / "missing.md", "Error: {path}: no such issue file; check the path\n"),
        (lambda p: p, "Error: {path}: is a directory, expected a issue file\n"),
    ],
)
def test_build_errors_are_one_line(run: Cli, tmp_path: Path, setup: Any, expected: str) -> None:
    path = setup(tmp_path)
    result = run("build", str(path))
    assert result.exit_code == 1
    assert result.output == expected.format(path=path)


def test_build_template_error_leaves_no_files(
    run: Cli, sqlite_project: Path, tmp_path: Path
) -> None:
    (sqlite_project / "templates" / "newsletter.txt.j2").write_text("{{ content }\n")
    out = tmp_path / "out"
    result = run("build", str(sqlite_project / "issues" / "2026-11-20-weekly.md"), "-o", str(out))
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: {sqlite_project / 'templates' / 'newsletter.txt.j2'}:1: template syntax error"
    )
    assert "Traceback" not in result.output
    assert not out.exists()


def test_help_lists_every_command_with_an_example() -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"]).output
    for name in (
        "init",
        "build",
        "preview",
        "subscribers",
        "send",
        "status",
        "report",
        "serve",
        "suppressions",
        "db",
    ):
        assert f"  {name}" in top, name
    for args in (
        ["build"],
        ["send"],
        ["status"],
        ["subscribers", "import"],
        ["serve"],
        ["preview"],
        ["init"],
    ):
        assert "Example:" in runner.invoke(cli, [*args, "--help"]).output, args


@pytest.mark.browser
def test_built_email_fits_phone_and_desktop(
    run: Cli, sample_issue: Path, sqlite_project: Path, tmp_path: Path, browser: Any
) -> None:
    for issue in (sample_issue, sqlite_project / "issues" / "2026-11-20-weekly.md"):
        assert run("build", str(issue), "-o", str(tmp_path)).exit_code == 0
        page_url = (
            tmp_path / f"{'ai-daily-digest' if issue == sample_issue else '2026-11-20-weekly'}.html"
        ).as_uri()
        phone = browser.new_page(viewport={"width": 375, "height": 800})
        phone.goto(page_url)
        scroll_width = phone.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= 375, f"horizontal scroll on a phone: {scroll_width}px"
        desk = browser.new_page(viewport={"width": 1024, "height": 800})
        desk.goto(page_url)
        width = desk.evaluate(
            "document.querySelector('.mailer-content').getBoundingClientRect().width"
        )
        column = desk.evaluate(
            "document.querySelector('.mailer-content').closest('div[style*=\"max-width:600px\"]').getBoundingClientRect().width"
        )
        assert 560 <= width <= 600 and column == 600, (width, column)
        desk.screenshot(path=str(tmp_path / "desktop.png"))
        phone.close()
        desk.close()
