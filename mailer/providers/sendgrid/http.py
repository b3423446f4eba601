"""One kept-alive HTTPS (or HTTP) connection, with the answer every exactly-once caller
needs: did the request certainly not leave, or may the server have it?

The `sendgrid` package's client (python_http_client on urllib) opens a new connection for
every request: over TLS two or three extra round trips each. A session here keeps one
connection per worker and opens a fresh one when the old may have gone stale.
"""

from __future__ import annotations

import http.client
import select
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

STALE_AFTER = 4.0  # seconds idle: servers close idle connections; reopen rather than guess


class NotSent(Exception):
    """The request certainly did not reach the server (no connection could be made)."""


class MaybeSent(Exception):
    """The request may have reached the server; what it did is unknown."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


class KeptAlive:
    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0
        self.opened = 0  # connections opened, for the benchmark's report

    def _fresh(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _usable(self) -> http.client.HTTPConnection | None:
        conn = self.conn
        if conn is None or conn.sock is None:
            return None
        if time.monotonic() - self.last_used > STALE_AFTER:
            return None
        readable, _, _ = select.select([conn.sock], [], [], 0)
        return None if readable else conn  # readable while idle: closed by the server

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Answer:
        conn = self._usable()
        if conn is None:
            self.close()
            conn = self._fresh()
            try:
                conn.connect()
            except ssl.SSLCertVerificationError:
                conn.close()
                raise
            except OSError as e:  # refused, unreachable, no such host, timed out connecting
                conn.close()
                raise NotSent(str(e)) from None
            self.conn = conn
            self.opened += 1
        try:
            conn.request(method, self.prefix + path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise MaybeSent(f"{type(e).__name__}: {e}") from None
        self.last_used = time.monotonic()
        if response.will_close:
            self.close()
        return Answer(response.status, response.headers, data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
