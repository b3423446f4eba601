"""Local images in an issue, made fit to mail: read relative to the issue, turned upright,
scaled to at most 1200 px on the longest side (the 600 px column at 2× density), stripped
of every metadata kind but the ICC profile (EXIF, XMP, comments, text chunks: a phone
photo's GPS position must not go to every reader), re-encoded (JPEG for photos, PNG where
there is transparency or flat colour; animated GIFs frame by frame) and named by the hash
of the result, so a URL never changes meaning and is cached for ever.

The bytes live in the database beside the pinned issue (`mailer serve` answers
/media/NAME from there), so a resume or another machine serves the same images.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mailer.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

MAX_SIDE = 1200
MAX_FILE = 30 * 1024 * 1024  # a larger file is a mistake (a video, a RAW photo), not an image
MAX_PIXELS = 50_000_000  # beyond this Pillow's decoder is a memory bomb
TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}
NAME_LENGTH = 20  # hex digits of sha256: 80 bits, no collision in any newsletter's life


@dataclass(frozen=True)
class Media:
    name: str  # HASH.ext
    content_type: str
    data: bytes
    width: int
    height: int


def is_local(src: str) -> bool:
    """A path to a file, not a URL: http(s), data:, cid: and protocol-relative are not."""
    parts = urlsplit(src)
    return not parts.scheme and not parts.netloc and bool(parts.path)


def load(src: str, issue_dir: Path, where: str, roots: tuple[Path, ...] = ()) -> Media:
    """The image `src` names, relative to the issue's directory, ready to send; or one
    line naming the file and what is wrong with it.

    Only a regular file inside the issue's folder or one of `roots` (the project) is read:
    whatever is read is published under /media, so an absolute path, `..` or a symlink
    out of the project must not publish /etc/passwd, and a device or a pipe must not
    hang the build or fill memory."""
    rel = unquote(urlsplit(src).path)
    label = f"{where}: image {unquote(src)}"  # as the writer wrote it (图.png, not %E5...)
    if Path(rel).suffix.lower() in (".svg", ".svgz"):
        raise InputError(
            f"{label}: SVG is not shown by Gmail or Outlook; export it as PNG "
            "(e.g. rsvg-convert -w 1200 in.svg > out.png)"
        )
    data = _read_inside(issue_dir / rel, (issue_dir, *roots), label)
    if data.lstrip()[:5] in (b"<?xml", b"<svg ", b"<svg>"):
        raise InputError(f"{label}: is SVG, which Gmail and Outlook do not show; export it as PNG")
    return convert(data, label)


def _read_inside(path: Path, roots: tuple[Path, ...], label: str) -> bytes:
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file ({path}); check the path") from None
    except (OSError, RuntimeError) as e:  # a symlink loop is a RuntimeError before 3.13
        raise InputError(f"{label}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise InputError(
            f"{label}: outside the project ({real}); copy the image into the project folder"
        )
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, not an image") from None
    except OSError as e:
        raise InputError(f"{label}: cannot read it ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = (
            "is a directory"
            if stat.S_ISDIR(st.st_mode)
            else "not a regular file (a device or a pipe)"
        )
        raise InputError(f"{label}: {what}, not an image file")
    if st.st_size > MAX_FILE:
        os.close(fd)
        raise InputError(f"{label}: larger than {MAX_FILE // 2**20} MB; export a smaller image")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FILE + 1)  # the file may grow after fstat
    if len(data) > MAX_FILE:
        raise InputError(f"{label}: larger than {MAX_FILE // 2**20} MB; export a smaller image")
    return data


def convert(data: bytes, label: str) -> Media:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    img: Image.Image
    try:
        img = Image.open(BytesIO(data))
        fmt = (img.format or "").upper()
        if fmt == "GIF" and getattr(img, "is_animated", False):
            return _animation(img, label)
        img.load()
        img = ImageOps.exif_transpose(img) or img
    except UnidentifiedImageError:
        raise InputError(f"{label}: not an image (PNG, JPEG, GIF or WebP expected)") from None
    except Image.DecompressionBombError:
        raise InputError(f"{label}: more than {MAX_PIXELS:,} pixels; export it smaller") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError(f"{label}: cannot decode it ({e}); export it again") from None
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    icc = img.info.get("icc_profile")  # colour, not metadata: kept so colours stay right
    _strip(img)
    out = BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    if alpha or fmt in ("PNG", "GIF", "BMP"):
        if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            img = img.convert("RGBA" if alpha else "RGB")
        img.save(out, "PNG", optimize=True, **extra)
        ext = "png"
    else:
        if img.mode != "RGB":
            img = img.convert("RGB")
        img.save(out, "JPEG", quality=82, optimize=True, progressive=True, **extra)
        ext = "jpg"
    w, h = img.size
    return _named(out.getvalue(), ext, w, h)


def _strip(img: Image.Image) -> None:
    """Forget every metadata kind Pillow read (EXIF, XMP, JPEG COM, PNG text, GIF comment
    and application blocks): Pillow writes some of them back from `info` on save. Only
    what draws the pixels stays."""
    for key in [k for k in img.info if k not in ("transparency", "background")]:
        del img.info[key]


def _animation(img: Image.Image, label: str) -> Media:
    """An animated GIF, re-encoded frame by frame (so no comment or XMP block survives)
    with its timing and loop, fitted like a still image."""
    from PIL import Image, ImageSequence

    frames: list[Image.Image] = []
    durations: list[int] = []
    loop = int(img.info.get("loop", 0))
    pixels = 0
    for frame in ImageSequence.Iterator(img):
        pixels += frame.width * frame.height
        if pixels > MAX_PIXELS:  # each frame is decoded whole: bound them all together
            raise InputError(
                f"{label}: an animation of more than {MAX_PIXELS:,} pixels in all; "
                "export it shorter or smaller"
            )
        durations.append(int(frame.info.get("duration", 100)))
        still = frame.convert("RGBA")
        if max(still.size) > MAX_SIDE:
            still.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        _strip(still)
        frames.append(still)
    out = BytesIO()
    frames[0].save(
        out,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=loop,
        disposal=2,
    )
    w, h = frames[0].size
    return _named(out.getvalue(), "gif", w, h)


def _named(data: bytes, ext: str, width: int, height: int) -> Media:
    digest = hashlib.sha256(data).hexdigest()[:NAME_LENGTH]
    return Media(f"{digest}.{ext}", TYPES[ext], data, width, height)


def content_type(name: str) -> str | None:
    """The type of a stored media name, or None if it is not one of ours."""
    stem, _, ext = name.partition(".")
    if len(stem) != NAME_LENGTH or not all(c in "0123456789abcdef" for c in stem):
        return None
    return TYPES.get(ext)
