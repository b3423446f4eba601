"""The week around a send: schedule, archive and feed, images, welcome, two languages."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from mailer.config import Settings, load_settings
from mailer.content.issue import load_issue
from mailer.errors import ConfigError, InputError
from mailer.schedule import cadence as schedule
from mailer.store import open_store
from mailer.web.serve import create_app
from tests.conftest import Cli, write
from tests.servers import run_uvicorn

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # the fake clock: 09:00 in Shanghai


def issue(project: Path, name: str, subject: str, **front: object) -> Path:
    meta = "".join(f"{k}: {v}\n" for k, v in front.items())
    body = f"---\nsubject: {subject}\n{meta}---\nThis week, {subject}.\n\n## One\n\nText.\n"
    return write(project / "issues" / name, body)


def add_people(run: Cli, n: int) -> None:
    rows = "email,name\n" + "".join(f"p{i}@example.com,P {i}\n" for i in range(n))
    path = write(run.project / f"people{n}.csv", rows)
    assert run("subscribers", "import", str(path)).exit_code == 0


def outbox(project: Path, slug: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted((project / "outbox" / slug).glob("*.eml"))
    ]


def html_of(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def text_of(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


# -- the schedule, on a fake clock ------------------------------------------------------


def test_schedule_states_on_a_fake_clock(settings: Settings, run: Cli) -> None:
    project = settings.project
    (project / "issues" / "2026-11-20-weekly.md").unlink()
    issue(project, "a.md", "Draft", date="2026-11-01")
    issue(project, "b.md", "Soon", send_at="2026-11-27T10:00:00+08:00")  # in 1 h
    issue(project, "c.md", "Due", send_at="2026-11-27T08:00:00+08:00")  # 1 h ago
    issue(project, "d.md", "Older due", send_at="2026-11-26T09:30:00+00:00")  # 15.5 h ago
    issue(project, "e.md", "Late", send_at="2026-11-20T09:00:00+08:00")  # a week ago
    write(project / "issues" / "welcome.md", "# Welcome\n\nHello.\n")
    entries = {e.name: e for e in schedule.scan(settings, NOW)}
    assert "issues/welcome.md" not in entries  # the welcome is never a list send
    states = {n: e.state.value for n, e in entries.items()}
    assert states == {
        "issues/a.md": "draft",
        "issues/b.md": "scheduled",
        "issues/c.md": "due",
        "issues/d.md": "due",
        "issues/e.md": "late",
    }
    # Oldest first; the late one is left to a human.
    assert [e.name for e in schedule.due(entries.values())] == ["issues/d.md", "issues/c.md"]
    # An hour later b is due too; a day later d is late.
    later = schedule.scan(settings, NOW + dt.timedelta(hours=1, minutes=1))
    assert {e.name for e in schedule.due(later)} == {"issues/b.md", "issues/c.md", "issues/d.md"}
    next_day = schedule.scan(settings, NOW + dt.timedelta(hours=9))
    assert "issues/d.md" not in {e.name for e in schedule.due(next_day)}
    # The newest by date (front matter, else send_at's day), then by file name.
    assert schedule.latest_unsent(entries.values()).name == "issues/c.md"  # type: ignore[union-attr]


def test_send_at_without_offset_takes_the_timezone_setting(project: Path) -> None:
    path = issue(project, "x.md", "Naive", send_at="2026-11-27T09:00:00")
    (e,) = [e for e in schedule.scan(load_settings(project), NOW) if e.name == "issues/x.md"]
    assert e.state.value == "broken" and "has no UTC offset" in e.error and "timezone" in e.error
    entries = schedule.scan(load_settings(project, {"timezone": "Asia/Shanghai"}), NOW)
    (e,) = [e for e in entries if e.name == "issues/x.md"]
    assert e.send_at == dt.datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert e.state.value == "due"
    assert load_issue(path).send_at == dt.datetime(2026, 11, 27, 9, 0)


def test_bad_send_at_and_timezone_are_one_line(run: Cli, project: Path) -> None:
    issue(project, "x.md", "Bad", send_at="next friday")
    r = run("schedule")
    assert r.exit_code == 0 and "broken" in r.output and "not an ISO 8601 time" in r.output
    r = run("send", "--due")
    assert r.exit_code == 1 and "not an ISO 8601 time" in r.output and "Traceback" not in r.output
    r = run("--set", "timezone=Mars/Olympus", "schedule")
    assert r.exit_code == 1 and "IANA time zone" in r.output
    r = run("send", "issues/2026-11-20-weekly.md", "--at", "tomorrow")
    assert r.exit_code == 1 and "ISO 8601" in r.output


def test_at_writes_front_matter_and_due_sends_once(run: Cli, project: Path) -> None:
    path = project / "issues" / "2026-11-20-weekly.md"
    before = path.read_text(encoding="utf-8")
    r = run("send", str(path), "--at", "2026-11-01T09:00:00+08:00")
    assert r.exit_code == 0, r.output
    after = path.read_text(encoding="utf-8")
    assert 'send_at: "2026-11-01T09:00:00+08:00"' in after
    # Every other line is as the writer left it.
    assert [ln for ln in after.splitlines() if not ln.startswith("send_at")] == before.splitlines()
    r = run("send", str(path), "--at", "2026-11-02T09:00:00+08:00")  # rescheduling replaces
    assert path.read_text(encoding="utf-8").count("send_at:") == 1
    assert "2026-11-02T09:00:00+08:00" in path.read_text(encoding="utf-8")
    run("subscribers", "import", str(project / "subscribers.csv.example"))
    # Due long ago: reported, not sent, exit 3.
    r = run("send", "--due")
    assert r.exit_code == 3 and "late: issues/2026-11-20-weekly.md" in r.output
    assert not (project / "outbox" / "2026-11-20-weekly").exists()
    r = run("--set", "max_lateness=31536000", "send", "--due")
    assert r.exit_code == 0, r.output
    assert "sent 5" in r.output
    r = run("send", "--due")  # finished: quiet
    assert r.exit_code == 0 and r.output == ""
    assert len(outbox(project, "2026-11-20-weekly")) == 5
    r = run("send", str(path), "--at", "2026-12-01T09:00:00+08:00")
    assert r.exit_code == 1 and "was sent already" in r.output
    r = run("schedule")
    assert re.search(r"sent\s+2026-11-02T09:00\+08:00\s+issues/2026-11-20-weekly.md", r.output)


@pytest.mark.parametrize("at", ["", " ", "\t"])
def test_at_without_a_time_is_one_line(run: Cli, at: str) -> None:
    r = run("send", "issues/2026-11-20-weekly.md", "--at", at)
    assert r.exit_code == 1 and "--at" in r.output and "2026-11-27T09:00:00" in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "front",
    [
        "send_at: 2026-11-01T09:00:00+08:00\nsend_at: 2026-12-01T09:00:00+08:00\n",
        "subject: One\nsubject: Two\n",
        "slug: a\ndate: 2026-11-01\nslug: b\n",
        "archive: true\narchive: false\n",
    ],
)
def test_a_field_given_twice_is_refused_everywhere(run: Cli, project: Path, front: str) -> None:
    path = write(project / "issues" / "twice.md", f"---\n{front}---\n# Twice\n\nText.\n")
    key = front.split(":")[0]
    for args in (("build", str(path)), ("send", str(path), "--at", "2026-11-30T09:00:00Z")):
        r = run(*args)
        assert r.exit_code == 1, (args, r.output)
        assert f"{key!r} is given twice" in r.output and "Traceback" not in r.output, r.output
    assert path.read_text(encoding="utf-8").count(key + ":") == 2  # nothing written
    r = run("schedule")
    assert "broken" in r.output and "given twice" in r.output


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date", "__MAILER_UNSUBSCRIBE_URL__"),
        ("date", "2026-11-01 __MAILER_EMAIL__"),
        ("subject", "Hi __MAILER_NAME__"),
        ("preheader", "__MAILER_UNSUBSCRIBE_URL__"),
        ("audience", "topic:__MAILER_X__"),
        ("slug", "__MAILER_EMAIL__"),
    ],
)
def test_no_front_matter_field_carries_a_reserved_placeholder(
    run: Cli, project: Path, field: str, value: str
) -> None:
    path = write(project / "issues" / "p.md", f"---\n{field}: {value}\n---\n# P\n\nText.\n")
    r = run("build", str(path))
    assert r.exit_code == 1, r.output
    assert f"{path}: {field}: contains the reserved text" in r.output, r.output


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("nl", [b"\n", b"\r\n"])
@pytest.mark.parametrize("front", [True, False])
def test_scheduling_keeps_the_files_bom_and_line_endings(
    run: Cli, project: Path, bom: bytes, nl: bytes, front: bool
) -> None:
    lines = [b"---", b"date: 2026-11-30", b"---"] if front else []
    lines += [b"# Kept", b"", "周报 text.".encode(), b""]
    path = project / "issues" / "kept.md"
    path.write_bytes(bom + nl.join(lines))
    for when in ("2026-11-30T09:00:00+00:00", "2026-12-01T09:00:00+00:00"):  # add, replace
        r = run("send", str(path), "--at", when)
        assert r.exit_code == 0, r.output
        data = path.read_bytes()
        assert data.startswith(bom) and not data[len(bom) :].startswith(b"\xef\xbb\xbf")
        body = data[len(bom) :]
        assert body.count(b"\n") == body.count(nl) and b"\r\r" not in body  # one style
        assert body.count(b"send_at:") == 1 and when.encode() in body
        assert body.endswith(nl.join(lines[-4:]))  # the rest as written


def test_due_is_quiet_when_nothing_is_due(run: Cli) -> None:
    r = run("send", "--due")
    assert (r.exit_code, r.output) == (0, "")


def test_latest_picks_the_newest_unsent_issue(run: Cli, project: Path) -> None:
    issue(project, "2026-11-27-next.md", "Next week", date="2026-11-27")
    run("subscribers", "import", str(project / "subscribers.csv.example"))
    r = run("send", "--latest", "--yes")
    assert r.exit_code == 0, r.output
    assert "latest unsent issue: issues/2026-11-27-next.md" in r.output
    assert len(outbox(project, "2026-11-27-next")) == 5
    r = run("send", "--latest", "--yes")  # now the older one is the newest unsent
    assert "issues/2026-11-20-weekly.md" in r.output
    r = run("send", "--latest", "--yes")
    assert r.exit_code == 1 and "no unsent issue" in r.output
    r = run("send", "--due", "--latest")
    assert r.exit_code == 2


def test_the_welcome_file_is_never_sent_to_the_list(run: Cli, project: Path) -> None:
    write(project / "issues" / "welcome.md", "# Welcome\n\nHello.\n")
    run("subscribers", "import", str(project / "subscribers.csv.example"))
    r = run("send", str(project / "issues/welcome.md"), "--yes")
    assert r.exit_code == 1 and "is the welcome mail" in r.output
    assert not (project / "outbox").exists()


def _due_process(project: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "mailer"
    return subprocess.Popen(
        [str(exe), "--project", str(project), "send", "--due"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MAILER_BATCH_SIZE": "20", "MAILER_CONCURRENCY": "2"},
    )


def test_two_overlapping_due_runs_never_send_twice(run: Cli, project: Path) -> None:
    """cron starts a run while the last is still going: they share the ledger's batches."""
    issue(project, "a.md", "First", send_at="2026-01-01T09:00:00+00:00")
    issue(project, "b.md", "Second", send_at="2026-01-02T09:00:00+00:00")
    add_people(run, 400)
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text() + "max_lateness = 31536000\n")
    procs = [_due_process(project), _due_process(project)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, (out, err)
    for slug in ("a", "b", "2026-11-20-weekly"):
        if slug == "2026-11-20-weekly":
            continue  # no send_at: a draft, never sent by --due
        to = Counter(str(m["To"]) for m in outbox(project, slug))
        assert len(to) == 400 and set(to.values()) == {1}, slug
    assert not (project / "outbox" / "2026-11-20-weekly").exists()
    with open_store(load_settings(project)) as store:
        for slug in ("a", "b"):
            found = store.pins.find(slug)
            assert found is not None
            assert store.ledger.counts(found.id).sent == 400


# -- images --------------------------------------------------------------------------------


def _photo(path: Path, size: tuple[int, int] = (3000, 2000)) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90°
    exif[0x8825] = {2: (39.0, 54.0, 0.0)}  # GPS latitude
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 40, 40)).save(path, exif=exif.tobytes())
    return path


def test_local_images_are_resized_stripped_and_sized(run: Cli, project: Path) -> None:
    _photo(project / "issues" / "img" / "photo.jpg")
    Image.new("RGBA", (300, 120), (0, 0, 0, 0)).save(project / "issues" / "img" / "logo.png")
    write(
        project / "issues" / "pics.md",
        "# Pictures\n\n![a photo](img/photo.jpg)\n\n![logo](img/logo.png)\n\n"
        "![remote](https://cdn.example.com/x.png)\n",
    )
    r = run("build", str(project / "issues/pics.md"), "-o", str(project / "build"), "--images")
    assert r.exit_code == 0, r.output
    html = (project / "build" / "pics.html").read_text()
    imgs = re.findall(r"<img [^>]*>", html)
    photo = next(i for i in imgs if 'alt="a photo"' in i)
    m = re.search(r'src="https://news\.example\.com/media/([0-9a-f]{20}\.jpg)"', photo)
    assert m, photo
    assert 'width="552"' in photo and 'height="828"' in photo  # upright, fitted to the column
    data = (project / "build" / "media" / m.group(1)).read_bytes()
    img = Image.open(BytesIO(data))
    assert img.size == (800, 1200)  # longest side 1200, turned upright
    assert not img.getexif()  # no camera, no GPS
    assert b"SecretCam" not in data
    logo = next(i for i in imgs if 'alt="logo"' in i)
    assert re.search(r'media/[0-9a-f]{20}\.png"', logo) and 'width="300"' in logo
    assert 'src="https://cdn.example.com/x.png"' in html  # remote: left alone
    assert "image (remote) https://cdn.example.com/x.png" in r.output
    assert re.search(r"image \(local\)  media/[0-9a-f]{20}\.jpg  800x1200", r.output)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("chart.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG is not shown by Gmail"),
        ("chart.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "is SVG"),
        ("chart.png", b"this is text", "not an image"),
        ("chart.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "cannot decode it"),
        ("missing.png", None, "no such file"),
    ],
)
def test_a_bad_local_image_is_one_line_naming_it(
    run: Cli, project: Path, name: str, content: bytes | None, message: str
) -> None:
    if content is not None:
        (project / "issues" / "img").mkdir(parents=True, exist_ok=True)
        (project / "issues" / "img" / name).write_bytes(content)
    write(project / "issues" / "x.md", f"# X\n\nText\n\n![chart](img/{name})\n")
    r = run("build", str(project / "issues/x.md"))
    assert r.exit_code == 1
    assert f"{project}/issues/x.md:5: image img/{name}:" in r.output and message in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def _gif_with_xmp(path: Path) -> Path:
    """An animated GIF with a comment and an XMP application block carrying a position."""
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    out = BytesIO()
    frames[0].save(
        out,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[70, 80, 90],
        loop=0,
        comment=b"SecretComment",
    )
    data = out.getvalue()
    xmp = b"<x:xmpmeta><exif:GPSLatitude>39,54N</exif:GPSLatitude></x:xmpmeta>"
    block = b"!\xff\x0bXMP DataXMP" + bytes([len(xmp)]) + xmp + b"\x00"
    at = data.index(b"!\xff\x0bNETSCAPE2.0")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:at] + block + data[at:])
    return path


def _carriers(folder: Path) -> dict[str, Path]:
    """One image of each format carrying each metadata kind its format can hold."""
    from PIL import PngImagePlugin

    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {2: (39.0, 54.0, 0.0)}
    xmp = b"<x:xmpmeta>SecretXmp GPSLatitude</x:xmpmeta>"
    jpeg = folder / "com.jpg"
    Image.new("RGB", (50, 40), (9, 9, 9)).save(
        jpeg, exif=exif.tobytes(), comment=b"SecretComment", xmp=xmp
    )
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SecretComment")
    info.add_itxt("XML:com.adobe.xmp", "SecretXmp GPSLatitude")
    info.add_text("Author", "SecretAuthor", zip=True)
    png = folder / "text.png"
    Image.new("RGBA", (50, 40), (9, 9, 9, 100)).save(png, pnginfo=info, exif=exif.tobytes())
    still = folder / "still.gif"
    Image.new("P", (50, 40), 3).save(still, comment=b"SecretComment")
    webp = folder / "photo.webp"
    Image.new("RGB", (50, 40), (9, 9, 9)).save(webp, exif=exif.tobytes(), xmp=xmp)
    return {
        "jpeg": jpeg,
        "png": png,
        "gif": still,
        "animated gif": _gif_with_xmp(folder / "moving.gif"),
        "webp": webp,
    }


def test_every_metadata_kind_is_stripped_from_every_format(tmp_path: Path) -> None:
    from mailer.content import media

    for kind, path in _carriers(tmp_path / "img").items():
        original = path.read_bytes()
        assert b"Secret" in original or kind == "png", kind  # the PNG's text is compressed
        m = media.load(path.name, path.parent, "x.md:1")
        assert b"Secret" not in m.data and b"GPS" not in m.data, kind
        img = Image.open(BytesIO(m.data))
        assert not img.getexif(), kind
        assert not {"comment", "xmp", "XML:com.adobe.xmp", "Comment", "Author", "exif"} & set(
            img.info
        ), (kind, img.info.keys())
        if kind == "animated gif":
            assert getattr(img, "n_frames", 1) == 3  # still moving, with its timing
            durations = []
            for i in range(3):
                img.seek(i)
                durations.append(img.info["duration"])
            assert durations == [70, 80, 90]


def test_an_icc_profile_survives_stripping(tmp_path: Path) -> None:
    from PIL import ImageCms

    from mailer.content import media

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (50, 40)).save(tmp_path / "c.jpg", icc_profile=icc, comment=b"SecretC")
    m = media.load("c.jpg", tmp_path, "x.md:1")
    assert Image.open(BytesIO(m.data)).info.get("icc_profile") == icc
    assert b"SecretC" not in m.data


def test_an_animation_too_large_in_all_is_refused(tmp_path: Path) -> None:
    from mailer.content import media

    frames = [Image.new("RGB", (2000, 2000), (i * 15, 0, 0)) for i in range(14)]  # 56 M px
    frames[0].save(tmp_path / "long.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="more than 50,000,000 pixels in all"):
        media.load("long.gif", tmp_path, "x.md:1")


def _sources(project: Path, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Image sources that must not be read, by what they are: (src, expected message)."""
    outside = tmp_path / "elsewhere"
    outside.mkdir(exist_ok=True)
    Image.new("RGB", (10, 10)).save(outside / "secret.png")
    img = project / "issues" / "img"
    img.mkdir(parents=True, exist_ok=True)
    (img / "link.png").symlink_to(outside / "secret.png")
    (img / "zero.png").symlink_to("/dev/zero")
    (img / "dir.png").mkdir()
    os.mkfifo(img / "pipe.png")
    return {
        "absolute outside": (str(outside / "secret.png"), "outside the project"),
        "dot-dot": ("../../elsewhere/secret.png", "outside the project"),
        "encoded dot-dot": ("..%2F..%2Felsewhere%2Fsecret.png", "outside the project"),
        "symlink out": ("img/link.png", "outside the project"),
        "device": ("/dev/zero", "outside the project"),
        "symlink to a device": ("img/zero.png", "outside the project"),
        "proc": ("/proc/self/environ", "outside the project"),
        "named pipe": ("img/pipe.png", "not a regular file"),
        "directory": ("img/dir.png", "is a directory"),
    }


def test_only_regular_files_inside_the_project_are_read(
    run: Cli, project: Path, tmp_path: Path
) -> None:
    sources = _sources(project, tmp_path)
    for kind, (src, message) in sources.items():
        write(project / "issues" / "x.md", f"# X\n\nText\n\n![chart]({src})\n")
        r = run("build", str(project / "issues/x.md"))
        assert r.exit_code == 1, (kind, r.output)
        assert message in r.output, (kind, r.output)
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, kind
    # Inside the project is fine, by a relative path, an absolute one, or a symlink that
    # stays inside.
    Image.new("RGB", (10, 10)).save(project / "logo.png")
    (project / "issues" / "img" / "inside.png").symlink_to(project / "logo.png")
    for src in ("../logo.png", str(project / "logo.png"), "img/inside.png"):
        write(project / "issues" / "x.md", f"# X\n\nText\n\n![logo]({src})\n")
        r = run("build", str(project / "issues/x.md"))
        assert r.exit_code == 0, (src, r.output)


def test_an_image_error_names_the_file_as_written(run: Cli, project: Path) -> None:
    (project / "issues" / "img").mkdir(parents=True, exist_ok=True)
    (project / "issues" / "img" / "图表.svg").write_text("<svg/>")
    write(project / "issues" / "x.md", "# X\n\nText\n\n![chart](img/图表.svg)\n")
    r = run("build", str(project / "issues/x.md"))
    assert r.exit_code == 1 and "image img/图表.svg: SVG is not shown" in r.output, r.output


# -- the archive, feed and media through uvicorn and Chromium -----------------------------


@pytest.fixture
def live(tmp_path: Path, db_url: str) -> Iterator[tuple[Path, str]]:
    """A project whose base_url is a live `mailer serve` (uvicorn on 127.0.0.1)."""
    from tests.conftest import make_project

    project = make_project(tmp_path, db_url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    toml = project / "mailer.toml"
    text = toml.read_text().replace("https://news.example.com", base)
    toml.write_text(text.replace('language = "en"', 'language = "zh-CN"'))
    settings = load_settings(project)
    with open_store(settings) as store:
        gen = run_uvicorn(create_app(settings, store, background=False), sock)
        url = next(gen)
        try:
            yield project, url
        finally:
            gen.close()


def _two_issues(run: Cli, project: Path) -> None:
    _photo(project / "issues" / "img" / "photo.jpg", (1600, 900))
    run("subscribers", "import", str(project / "subscribers.csv.example"))
    assert run("send", str(project / "issues/2026-11-20-weekly.md"), "--yes").exit_code == 0
    write(
        project / "issues" / "2026-11-27-pics.md",
        "---\ndate: 2026-11-27\npreheader: Pictures of the week\n---\n# Pictures\n\n"
        "Look.\n\n![a photo](img/photo.jpg)\n",
    )
    assert run("send", str(project / "issues/2026-11-27-pics.md"), "--yes").exit_code == 0
    issue(project, "private.md", "Members only", archive="false")
    r = run("send", str(project / "issues/private.md"), "--yes")
    assert r.exit_code == 0, r.output


def test_archive_feed_and_media_served(live: tuple[Path, str]) -> None:
    import feedparser

    project, url = live
    run = Cli(project)
    _two_issues(run, project)
    index = httpx.get(f"{url}/archive/")
    assert index.status_code == 200
    titles = re.findall(r'<a href="([^"]+)/">([^<]+)</a>', index.text)
    assert [t[0] for t in titles] == ["private", "2026-11-27-pics", "2026-11-20-weekly"][1:]
    assert "Pictures of the week" in index.text and "2026-11-27" in index.text
    assert "Members only" not in index.text
    assert httpx.get(f"{url}/archive/private/").status_code == 404
    assert httpx.get(f"{url}/archive/nope/").status_code == 404
    r = httpx.get(f"{url}/archive/2026-11-27-pics")
    assert r.status_code == 308 and r.headers["location"].endswith("/archive/2026-11-27-pics/")
    page = httpx.get(f"{url}/archive/2026-11-27-pics/").text
    assert "/u/" not in page and "@example.com" not in page.replace("newsletter@example.com", "")
    assert f'action="{url}/subscribe"' in page and 'name="email"' in page
    media = re.search(rf'src="{url}/media/([0-9a-f]{{20}}\.jpg)"', page)
    assert media
    img = httpx.get(f"{url}/media/{media.group(1)}")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert "immutable" in img.headers["cache-control"]
    assert Image.open(BytesIO(img.content)).size == (675, 1200)  # upright, longest side 1200
    for bad in ("../mailer.toml", "x.jpg", "0" * 20 + ".exe", "%2e%2e"):
        assert httpx.get(f"{url}/media/{bad}").status_code == 404
    # The web version shares well: title with the newsletter's name, description, canonical
    # URL, Open Graph and Twitter cards, the feed's autodiscovery, a way back to the archive.
    import lxml.html

    page = lxml.html.document_fromstring(httpx.get(f"{url}/archive/2026-11-27-pics/").content)
    meta = {
        (m.get("property") or m.get("name")): m.get("content") for m in page.xpath("//head/meta")
    }
    issue_url = f"{url}/archive/2026-11-27-pics/"
    assert page.findtext(".//title") == "Pictures · My Newsletter"
    assert meta["description"] == meta["og:description"] == "Pictures of the week"
    assert meta["og:title"] == meta["twitter:title"] == "Pictures"
    assert meta["og:url"] == issue_url and meta["og:type"] == "article"
    assert meta["og:site_name"] == "My Newsletter" and meta["twitter:card"] == "summary"
    assert page.xpath("//link[@rel='canonical']/@href") == [issue_url]
    assert page.xpath("//link[@rel='alternate'][@type='application/atom+xml']/@href") == [
        f"{url}/feed.xml"
    ]
    assert page.xpath("//a[contains(@class, 'mailer-archive-link')]/@href") == [f"{url}/archive/"]
    feed = feedparser.parse(httpx.get(f"{url}/feed.xml").content)
    assert feed.version == "atom10" and not feed.bozo
    assert [e.title for e in feed.entries] == [
        "Pictures",
        "本周 AI 周报 · Weekly roundup: small models catch up",
    ]
    assert feed.entries[0].link == f"{url}/archive/2026-11-27-pics/"
    assert "Pictures of the week" in feed.entries[0].summary
    assert "/u/" not in feed.entries[0].content[0].value
    # The entry is the article: its words and image, no hidden preheader and padding, no
    # Outlook conditional comments, no masthead or subscribe form; dated by the issue.
    for entry, words in zip(feed.entries, ("Look.", "小模型"), strict=True):
        content = entry.content[0].value
        assert words in content
        assert "\u034f" not in content and "&#847;" not in content and "[if " not in content
        assert "<form" not in content and "display:none" not in content.replace(" ", "")
        assert entry.published.startswith(("2026-11-27T", "2026-11-20T"))
        assert "." not in entry.updated  # whole seconds
    assert "<img" in feed.entries[0].content[0].value
    # Each email links to its web version, in both parts, and says where the archive is.
    (msg, *_) = outbox(project, "2026-11-27-pics")
    web = f"{url}/archive/2026-11-27-pics/"
    assert f'href="{web}"' in html_of(msg) and web in text_of(msg)
    assert msg["List-Archive"] == f"<{url}/archive/>" and msg["List-Post"] == "NO"
    (private, *_) = outbox(project, "private")
    assert "/archive/private/" not in html_of(private)


def test_web_version_and_email_in_chromium(live: tuple[Path, str], browser: object) -> None:
    project, url = live
    run = Cli(project)
    _two_issues(run, project)
    page = browser.new_page()  # type: ignore[attr-defined]
    loaded: list[str] = []
    page.on("requestfinished", lambda req: loaded.append(req.url))
    page.goto(f"{url}/archive/2026-11-27-pics/")
    page.wait_for_load_state("load")
    widths = page.eval_on_selector_all("img", "els => els.map(e => [e.src, e.naturalWidth])")
    assert widths and all(w > 0 for _, w in widths), widths
    assert any("/media/" in u for u in loaded)
    body = page.inner_text("body")
    assert "@example.com" not in body.replace("newsletter@example.com", "")
    assert page.locator("form input[name=email]").count() == 1
    page.locator("form input[name=email]").fill("new@example.com")
    page.locator("form button").click()
    page.wait_for_load_state("load")
    assert "请查收邮件" in page.content()  # zh-CN: the project's language
    # The email as sent, opened from disk: its image loads from /media of the server.
    (msg, *_) = outbox(project, "2026-11-27-pics")
    eml_html = project / "sent.html"
    eml_html.write_text(html_of(msg), encoding="utf-8")
    page.goto(eml_html.as_uri())
    page.wait_for_load_state("load")
    widths = page.eval_on_selector_all("img", "els => els.map(e => [e.src, e.naturalWidth])")
    assert widths and all(w > 0 for _, w in widths), widths
    assert page.locator("a", has_text="在浏览器中查看").get_attribute("href") == (
        f"{url}/archive/2026-11-27-pics/"
    )
    page.close()


def test_archive_export_is_a_static_site(live: tuple[Path, str], tmp_path: Path) -> None:
    project, _ = live
    run = Cli(project)
    _two_issues(run, project)
    out = tmp_path / "public"
    r = run("archive", "export", str(out))
    assert r.exit_code == 0, r.output
    index = (out / "archive" / "index.html").read_text()
    for href in re.findall(r'<a href="([^"]+/)">', index):
        assert (out / "archive" / href / "index.html").is_file(), href
    assert not (out / "archive" / "private").exists()
    page = (out / "archive" / "2026-11-27-pics" / "index.html").read_text()
    (src,) = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert src.startswith("../../media/")
    assert (out / "archive" / "2026-11-27-pics" / src).resolve().is_file()
    assert (out / "feed.xml").read_bytes().startswith(b"<?xml")
    root = (out / "index.html").read_text()
    assert '<html lang="zh-CN">' in root and "<title>My Newsletter</title>" in root
    # Links within the export are relative; the canonical URL stays absolute.
    assert 'href="../../archive/"' in page and 'href="../../feed.xml"' in page
    assert re.search(r'<link rel="canonical" href="http://127\.0\.0\.1:\d+/archive/', page)
    r = run("archive", "export", str(project / "mailer.toml" / "site"))
    assert r.exit_code == 1 and "Traceback" not in r.output
    before = sorted(p.name for p in project.iterdir())
    for empty in ("", " "):
        r = run("archive", "export", empty)
        assert r.exit_code == 2 and "DIRECTORY is empty" in r.output, r.output
    assert sorted(p.name for p in project.iterdir()) == before  # nothing written into it


@pytest.mark.parametrize("slug", ["index.html", "INDEX.html", "confirmations", "Preferences"])
def test_a_slug_mailer_uses_itself_is_refused_before_pinning(
    run: Cli, project: Path, slug: str
) -> None:
    path = issue(project, "x.md", "Collides", slug=slug)
    run("subscribers", "add", "ann@example.com")
    for args in (("build", str(path)), ("send", str(path), "--yes")):
        r = run(*args)
        assert r.exit_code == 1 and f"slug {slug!r} is a name mailer uses itself" in r.output
    with open_store(load_settings(project)) as store:
        assert store.pins.find(slug) is None
    assert not (project / "outbox").exists()


# -- welcome -------------------------------------------------------------------------------


def _confirm(client: TestClient, project: Path, address: str) -> None:
    from tests.web import confirm_links, drain

    before = len(confirm_links(project)) if (project / "outbox" / "confirmations").exists() else 0
    assert client.post("/subscribe", data={"email": address}).status_code == 200
    drain(client)
    link = confirm_links(project)[before]
    assert client.post(link).status_code == 200
    drain(client)


def test_welcome_mail_once_after_confirming(run: Cli, project: Path, client: TestClient) -> None:
    write(
        project / "issues" / "welcome.md",
        "---\nslug: welcome\n---\n# 欢迎！\n\nGlad you are here.\n",
    )
    run("subscribers", "import", str(project / "subscribers.csv.example"))
    _confirm(client, project, "new@example.com")
    (msg,) = outbox(project, "welcome")
    assert msg["To"] == "new@example.com" and msg["Subject"] == "欢迎！"
    assert "/u/" in html_of(msg)  # their own unsubscribe link, like any issue
    assert "/archive/welcome" not in html_of(msg) + text_of(msg)  # not on the web: no link
    # Unsubscribe and come back: confirmed again, welcomed once.
    with open_store(load_settings(project)) as store:
        s = store.subscribers.require("new@example.com")
        store.events.one_click_unsubscribe(s.id, 0)
        store.queue.confirm(s.id)
    drain_and_confirm_again(client, project)
    assert len(outbox(project, "welcome")) == 1
    # The five imported subscribers never got it: the welcome is not a list send.
    assert {str(m["To"]) for m in outbox(project, "welcome")} == {"new@example.com"}


def drain_and_confirm_again(client: TestClient, project: Path) -> None:
    from tests.web import confirm_links, drain

    drain(client)
    assert client.post(confirm_links(project)[-1]).status_code == 200
    drain(client)


def test_welcome_latest_sends_the_last_issue_once(run: Cli, tmp_path: Path, db_url: str) -> None:
    from tests.conftest import make_project

    project = make_project(tmp_path, db_url)
    toml = project / "mailer.toml"
    toml.write_text(toml.read_text() + "welcome_latest = true\n")
    run = Cli(project)
    run("subscribers", "import", str(project / "subscribers.csv.example"))
    assert run("send", str(project / "issues/2026-11-20-weekly.md"), "--yes").exit_code == 0
    settings = load_settings(project)
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, background=False)) as client,
    ):
        _confirm(client, project, "late@example.com")
        from mailer.sending.welcome import welcome

        s = store.subscribers.require("late@example.com")
        assert welcome(settings, store, s.id).sent == []  # asked again: nothing more
    to = Counter(str(m["To"]) for m in outbox(project, "2026-11-20-weekly"))
    assert to["late@example.com"] == 1 and len(to) == 6
    r = run("status", "2026-11-20-weekly")
    assert re.search(r"sent\s+6", r.output)
    # A newer issue whose send reached nobody (the outbox could not be written) is pinned,
    # but not what a new reader is greeted with: the last issue that went out is.
    newer = issue(project, "2026-11-27-newer.md", "Newer")
    r = run("--set", "outbox_dir=mailer.toml/out", "send", str(newer), "--yes")
    assert r.exit_code != 0 and "stopped" in r.output, r.output
    with (
        open_store(settings) as store,
        TestClient(create_app(settings, store, background=False)) as client,
    ):
        _confirm(client, project, "later@example.com")
    assert not (project / "outbox" / "2026-11-27-newer").exists()
    to = Counter(str(m["To"]) for m in outbox(project, "2026-11-20-weekly"))
    assert to["later@example.com"] == 1


# -- two languages -------------------------------------------------------------------------


def test_pages_and_footer_speak_the_newsletter_language(project: Path, run: Cli) -> None:
    for lang, words in (
        ("zh-CN", ("订阅", "退订", "在浏览器中查看")),
        ("en", ("Subscribe", "Unsubscribe", "View in browser")),
    ):
        settings = load_settings(project, {"language": lang})
        with (
            open_store(settings) as store,
            TestClient(create_app(settings, store, background=False)) as c,
        ):
            page = c.get("/subscribe")
            assert f'<html lang="{lang}">' in page.text and words[0] in page.text
            assert c.get("/u/forged.token.x").status_code == 404
            assert ("链接无效" in c.get("/u/forged.token.x").text) == (lang == "zh-CN")
        r = run(
            "--set",
            f"language={lang}",
            "build",
            str(project / "issues/2026-11-20-weekly.md"),
            "-o",
            str(project / "build"),
        )
        assert r.exit_code == 0
        html = (project / "build" / "2026-11-20-weekly.html").read_text()
        text = (project / "build" / "2026-11-20-weekly.txt").read_text()
        assert words[1] in html and words[2] in html and words[1] in text and words[2] in text
    # The confirmation mail, in zh-CN.
    from mailer.sending.confirm import send_confirmation

    zh = load_settings(project, {"language": "zh-CN"})
    send_confirmation(zh, "a@example.com", "", "https://news.example.com/c/x")
    (msg,) = outbox(project, "confirmations")
    assert "确认订阅" in str(msg["Subject"]) and "是的，订阅" in text_of(msg)


def test_a_project_overrides_a_string_and_adds_a_language(project: Path, run: Cli) -> None:
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    def po(lang: str, entries: dict[str, str]) -> None:
        cat = Catalog(locale=lang)
        for k, v in entries.items():
            cat.add(k, v)
        (project / "locale").mkdir(exist_ok=True)
        with (project / "locale" / f"{lang}.po").open("wb") as f:
            write_po(f, cat)

    def build(lang: str) -> tuple[int, str]:
        issue_file = str(project / "issues/2026-11-20-weekly.md")
        r = run("--set", f"language={lang}", "build", issue_file, "-o", str(project / "build"))
        html = (project / "build" / "2026-11-20-weekly.html").read_text()
        return r.exit_code, html if r.exit_code == 0 else r.output

    po("zh_CN", {"Unsubscribe": "取消订阅"})
    po("fr", {"Unsubscribe": "Se désabonner", "View in browser": "Voir en ligne"})
    html = build("zh-CN")[1]
    assert "取消订阅" in html and "在浏览器中查看" in html  # overridden; the rest is ours
    html = build("fr")[1]
    assert "Se désabonner" in html and "Voir en ligne" in html
    (project / "locale" / "fr.po").write_text('msgid "x\n', encoding="utf-8")
    code, output = build("fr")
    assert code == 1 and "fr.po: not a readable .po catalog" in output


def _catalog(project: Path, lang: str, entries: dict[str, str], header: str = "") -> Path:
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    cat = Catalog(locale=lang)
    for k, v in entries.items():
        cat.add(k, v)
    (project / "locale").mkdir(exist_ok=True)
    path = project / "locale" / f"{lang}.po"
    with path.open("wb") as f:
        write_po(f, cat)
    if header:
        text = path.read_text(encoding="utf-8")
        text = re.sub(r'"Plural-Forms: [^"]*"', f'"Plural-Forms: {header}\\\\n"', text)
        path.write_text(text, encoding="utf-8")
    return path


SUBJECT = "Confirm your subscription to %(newsletter)s"


@pytest.mark.parametrize(
    ("entries", "header"),
    [
        ({SUBJECT: "Confirmez votre abonnement"}, ""),  # a value left out
        ({SUBJECT: "Confirmez %(newsleter)s"}, ""),  # misspelt
        ({SUBJECT: "Confirmez %(newsletter)s %(email)s"}, ""),  # one more
        ({SUBJECT: "Confirmez %(newsletter)d"}, ""),  # another conversion
        ({SUBJECT: "Confirmez %s"}, ""),  # positional for named
        ({"Pause for %(n)d week(s)": "Pause %(n)d %(n)d %s"}, ""),
        ({}, "nplurals=2; plural=(n !=;"),  # broken plural expression
        ({}, "nplurals=x; plural=n"),
        ({}, "nplurals=2; plural=__import__('os')"),
    ],
)
def test_a_bad_project_catalog_is_one_line_naming_it(
    project: Path, run: Cli, entries: dict[str, str], header: str
) -> None:
    path = _catalog(project, "fr", entries, header)
    issue_file = str(project / "issues/2026-11-20-weekly.md")
    r = run("--set", "language=fr", "build", issue_file, "-o", str(project / "build"))
    assert r.exit_code == 1, r.output
    assert f"Error: {path}" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert "Traceback" not in r.output
    # mailer serve reads every offered language's catalog at start, not on a reader's visit.
    settings = load_settings(project, {"language": "fr"})
    with open_store(settings) as store, pytest.raises(ConfigError, match=re.escape(str(path))):
        create_app(settings, store, background=False)


def test_a_catalog_cannot_put_markup_into_mail_or_pages(project: Path, run: Cli) -> None:
    script = "</title><script>alert(1)</script>"
    _catalog(
        project,
        "fr",
        {
            "View in browser": f"Voir {script}",
            "Link not valid": f"Lien {script}",
            "Confirm your subscription to %(newsletter)s": f"{script} %(newsletter)s",
        },
    )
    issue_file = str(project / "issues/2026-11-20-weekly.md")
    r = run("--set", "language=fr", "build", issue_file, "-o", str(project / "build"))
    assert r.exit_code == 0, r.output
    html = (project / "build" / "2026-11-20-weekly.html").read_text()
    text = (project / "build" / "2026-11-20-weekly.txt").read_text()
    assert "<script>" not in html and "Voir &lt;/title&gt;&lt;script&gt;" in html
    assert f"Voir {script}" in text  # plain text is text: shown as written
    settings = load_settings(project, {"language": "fr"})
    with open_store(settings) as store:
        page = TestClient(create_app(settings, store, background=False)).get("/u/forged.x.y")
    assert page.status_code == 404
    assert "<script>" not in page.text and "Lien &lt;/title&gt;&lt;script&gt;" in page.text


def test_every_string_has_a_chinese_translation() -> None:
    """A new string in a template or page without a zh_CN entry fails here (make messages)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    ids: set[str] = set()
    for sub, method in (
        ("mailer", "python"),
        ("templates", "jinja2"),
        ("mailer/web/templates", "jinja2"),  # the pages mailer serve shows
    ):
        for _file, _line, msg, _comments, _ctx in extract_from_dir(
            root / sub,
            method_map=[("**.py", "python")] if method == "python" else [("**.j2", "jinja2")],
            options_map={"**.j2": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None, "gettext": None},
        ):
            ids.add(msg if isinstance(msg, str) else msg[0])
    assert len(ids) > 30
    with (root / "mailer" / "locale" / "zh_CN.po").open("rb") as f:
        catalog = read_po(f)
    missing = sorted(i for i in ids if not (catalog.get(i) and catalog.get(i).string))
    assert missing == []


def test_a_welcome_stopped_by_the_provider_is_sent_on_the_retry(project: Path) -> None:
    from mailer.errors import DeliveryError
    from mailer.sending.welcome import welcome

    write(project / "issues" / "welcome.md", "# Welcome\n\nHello.\n")
    broken = load_settings(project, {"outbox_dir": "mailer.toml/out"})  # cannot be created
    settings = load_settings(project)
    with open_store(settings) as store:
        s, _ = store.subscribers.add("w@example.com", "")
        with pytest.raises(DeliveryError, match="stopped"):
            welcome(broken, store, s.id)
        assert not (project / "outbox").exists()
        assert welcome(settings, store, s.id).sent == ["welcome"]  # the queue's retry
        assert welcome(settings, store, s.id).sent == []  # and never again
    assert [str(m["To"]) for m in outbox(project, "welcome")] == ["w@example.com"]
