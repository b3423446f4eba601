"""Sizes of the images an issue shows, so each <img> carries width and height attributes:
Outlook for Windows ignores max-width and shows an image at its natural size (a 1600 px
chart runs far off a 600 px email). Read from the first bytes of the image (Pillow), once
per URL per process; an image that cannot be read is a warning, never an error."""

from __future__ import annotations

import urllib.error
import urllib.request
from io import BytesIO

COLUMN = 552  # the content column: 600 px less the 24 px padding on each side
_SIZES: dict[str, tuple[int, int] | None] = {}


def measure(url: str, timeout: float) -> tuple[tuple[int, int] | None, str]:
    """((width, height) or None, why not)."""
    if url in _SIZES:
        return _SIZES[url], ""
    from PIL import Image, UnidentifiedImageError

    size: tuple[int, int] | None = None
    why = ""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mailer (image size)"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            head = response.read(256 * 1024)  # enough for the header of any common format
        size = Image.open(BytesIO(head)).size
    except (urllib.error.URLError, OSError, ValueError) as e:
        why = str(getattr(e, "reason", e))
    except UnidentifiedImageError:
        why = "not an image Pillow can read"
    _SIZES[url] = size
    return size, why


def fitted(size: tuple[int, int]) -> tuple[int, int]:
    """The width and height to display: the natural size, scaled down to the column."""
    w, h = size
    if w <= COLUMN:
        return w, h
    return COLUMN, max(1, round(h * COLUMN / w))
