"""Binding a listening socket, moving on to the next port when one is taken."""

from __future__ import annotations

import socket

from mailer.errors import MailerError


def bind_free(host: str, port: int, tries: int = 20) -> tuple[socket.socket, int]:
    last: OSError | None = None
    for candidate in range(port, min(port + tries, 65536)):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as e:
            sock.close()
            last = e
            continue
        sock.listen(128)
        return sock, candidate
    why = getattr(last, "strerror", None) or last
    if tries == 1:
        raise MailerError(
            f"cannot listen on {host}:{port} ({why}); is another server on it? pass another --port"
        )
    raise MailerError(
        f"cannot listen on {host} ports {port}-{port + tries - 1} ({why}); pass --port"
    )
