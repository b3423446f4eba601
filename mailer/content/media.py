"""Local images in an issue, made fit to mail: read relative to the issue, turned upright,
scaled to at most 1200 px on the longest side (the 600 px column at 2× density), stripped
of EXIF/XMP/text chunks (a phone photo's GPS position must not go to every reader),
re-encoded (JPEG for photos, PNG where there is transparency or flat colour) and named by
the hash of the result, so a URL never changes meaning and is cached for ever.

The bytes live in the database beside the pinned issue (`mailer serve` answers
/media/NAME from there), so a resume or another machine serves the same images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mailer.errors import InputError

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


def load(src: str, issue_dir: Path, where: str) -> Media:
    """The image `src` names, relative to the issue's directory, ready to send; or one
    line naming the file and what is wrong with it."""
    rel = unquote(urlsplit(src).path)
    path = (issue_dir / rel) if not Path(rel).is_absolute() else Path(rel)
    label = f"{where}: image {src}"
    if path.suffix.lower() in (".svg", ".svgz"):
        raise InputError(
            f"{label}: SVG is not shown by Gmail or Outlook; export it as PNG "
            "(e.g. rsvg-convert -w 1200 in.svg > out.png)"
        )
    try:
        data = path.read_bytes() if path.stat().st_size <= MAX_FILE else None
    except FileNotFoundError:
        raise InputError(f"{label}: no such file ({path}); check the path") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, not an image") from None
    except OSError as e:
        raise InputError(f"{label}: cannot read it ({e.strerror or e})") from None
    if data is None:
        raise InputError(f"{label}: larger than {MAX_FILE // 2**20} MB; export a smaller image")
    if data.lstrip()[:5] in (b"<?xml", b"<svg ", b"<svg>"):
        raise InputError(f"{label}: is SVG, which Gmail and Outlook do not show; export it as PNG")
    return convert(data, label)


def convert(data: bytes, label: str) -> Media:
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    img: Image.Image
    try:
        img = Image.open(BytesIO(data))
        fmt = (img.format or "").upper()
        if fmt == "GIF" and getattr(img, "is_animated", False):
            # Frames cannot be re-encoded without losing the animation's timing: kept as is
            # (GIF carries no EXIF), and shown at a fitted size by its width/height.
            w, h = img.size
            return _named(data, "gif", w, h)
        img.load()
        img = ImageOps.exif_transpose(img) or img
    except UnidentifiedImageError:
        raise InputError(f"{label}: not an image (PNG, JPEG, GIF or WebP expected)") from None
    except Image.DecompressionBombError:
        raise InputError(f"{label}: more than {MAX_PIXELS:,} pixels; export it smaller") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"{label}: cannot decode it ({e}); export it again") from None
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    out = BytesIO()
    icc = img.info.get("icc_profile")  # colour, not metadata: kept so colours stay right
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


def _named(data: bytes, ext: str, width: int, height: int) -> Media:
    digest = hashlib.sha256(data).hexdigest()[:NAME_LENGTH]
    return Media(f"{digest}.{ext}", TYPES[ext], data, width, height)


def content_type(name: str) -> str | None:
    """The type of a stored media name, or None if it is not one of ours."""
    stem, _, ext = name.partition(".")
    if len(stem) != NAME_LENGTH or not all(c in "0123456789abcdef" for c in stem):
        return None
    return TYPES.get(ext)
