"""Files the tool writes: all of a file or none of it, readable as any other file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give: a web server can serve a build


@contextlib.contextmanager
def atomic(path: Path, mode: str = "w", **kw: Any) -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, then rename it over `path`.

    A failure leaves `path` as it was and no temporary file behind. OSError is the
    caller's to turn into one line naming the path.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kw) as f:
            yield f
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    with atomic(path, "wb") as f:
        f.write(data)
