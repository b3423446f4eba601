"""Real local servers the tests (and bench/) talk to: SMTP (aiosmtpd) and SendGrid's API.

Both listen on 127.0.0.1 on a free port and record what they received.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class SmtpBehaviour:
    """Recipients by local-part prefix: temp- (451 on RCPT), dead- (550 5.1.1), drop- (hang up)."""

    temp_failures: int = 1  # how many 451s a temp- recipient gets before acceptance
    seen_temp: Counter[str] = field(default_factory=Counter)


class RecordingHandler:
    def __init__(self, keep_messages: bool = True) -> None:
        self.lock = threading.Lock()
        self.delivered: Counter[str] = Counter()
        self.messages: list[bytes] = []
        self.keep = keep_messages
        self.behaviour = SmtpBehaviour()
        self.data_delay = 0.0
        self.envelopes: list[tuple[str, list[str]]] = []  # (MAIL FROM, RCPT TOs) per message
        # aiosmtpd reads pipelined commands in order but does not say so; like Postfix and
        # every real relay, this server advertises PIPELINING (RFC 2920) unless told not to.
        self.pipelining = True

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        local = address.split("@")[0]
        if local.startswith("dead-"):
            return "550 5.1.1 No such user here"
        if local.startswith("temp-"):
            with self.lock:
                self.behaviour.seen_temp[address] += 1
                if self.behaviour.seen_temp[address] <= self.behaviour.temp_failures:
                    return "451 4.7.1 Try again later"
        if local.startswith("drop-"):
            server.transport.close()  # type: ignore[union-attr]
            return "421 closing"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)  # a slow server: crashes land mid-request
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.delivered[rcpt.lower()] += 1
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            if self.keep:
                self.messages.append(envelope.original_content or b"")
        return "250 2.0.0 Queued"

    def parsed(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(m, policy=email.policy.default) for m in self.messages]  # type: ignore[misc]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(
        self,
        keep_messages: bool = True,
        auth: tuple[str, str] | None = None,
        **tls: Any,  # tls_context= (STARTTLS) or ssl_context= (implicit TLS), for aiosmtpd
    ) -> None:
        self.handler = RecordingHandler(keep_messages)
        kwargs: dict[str, Any] = dict(tls)
        if auth is not None:
            user, password = auth

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> Any:
                from aiosmtpd.smtp import AuthResult

                ok = data.login.decode() == user and data.password.decode() == password
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_require_tls=False)
        self.port = free_port()  # aiosmtpd's Controller cannot itself listen on port 0
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
        self.controller.loop.close()  # aiosmtpd leaves its loop open


class SendGridState:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.lock = threading.Lock()
        self.script: list[str] = []  # next answers: "429", "500", "stall", "close", "400"
        self.requests: list[dict[str, Any]] = []
        self.delivered: Counter[str] = Counter()
        self.keep_bodies = True
        self.stall_seconds = 3.0
        self.suppressions: dict[str, list[dict[str, Any]]] = {}
        self.latency = 0.0  # seconds before answering an accepted request
        # When set, the first requests wait here until this many are in flight at once:
        # a test can prove that two clients really sent side by side.
        self.rendezvous: threading.Barrier | None = None
        self.connections = 0  # TCP connections clients opened

    def next_answer(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"


def validate_mail_send(body: Any) -> list[dict[str, str]]:
    """The checks SendGrid documents for /v3/mail/send that matter to us."""
    errors: list[dict[str, str]] = []
    if not isinstance(body, dict):
        return [{"field": None, "message": "Bad Request"}]  # type: ignore[dict-item]
    ps = body.get("personalizations")
    if not isinstance(ps, list) or not 1 <= len(ps) <= 1000:
        errors.append({"field": "personalizations", "message": "must have 1 to 1000 items"})
        ps = []
    for i, p in enumerate(ps):
        to = p.get("to")
        if (
            not isinstance(to, list)
            or not to
            or not all("@" in str(t.get("email", "")) for t in to)
        ):
            errors.append({"field": f"personalizations.{i}.to", "message": "invalid to"})
        subs = json.dumps(p.get("substitutions", {}))
        if len(subs) > 10000:
            errors.append({"field": f"personalizations.{i}.substitutions", "message": "too large"})
    if not isinstance(body.get("from"), dict) or "@" not in str(body["from"].get("email", "")):
        errors.append(
            {"field": "from.email", "message": "The from email does not contain a valid address."}
        )
    if not body.get("subject"):
        errors.append({"field": "subject", "message": "The subject is required."})
    content = body.get("content") or []
    if not content or content[0].get("type") != "text/plain":
        errors.append({"field": "content", "message": "text/plain must come first"})
    return errors


def make_handler(state: SendGridState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with state.lock:
                state.connections += 1

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {state.api_key}":
                self._json(
                    401,
                    {
                        "errors": [
                            {
                                "field": None,
                                "message": "The provided authorization grant is invalid, expired, or revoked",
                            }
                        ]
                    },
                )
                return False
            return True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path != "/v3/mail/send":
                self._json(404, {"errors": [{"message": "not found"}]})
                return
            if not self._authorized():
                return
            if state.rendezvous is not None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    state.rendezvous.wait(timeout=60)
                state.rendezvous = None
            answer = state.next_answer()
            if answer == "close":
                self._accept(raw)  # it took the request, then never answered
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if answer == "stall":
                self._accept(raw)
                time.sleep(state.stall_seconds)
                self.close_connection = True
                return
            if answer == "429":
                self._json(
                    429,
                    {"errors": [{"message": "too many requests"}]},
                    {
                        "X-RateLimit-Limit": "600",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(int(time.time()) + 1),
                    },
                )
                return
            if answer in ("500", "503"):
                self._json(int(answer), {"errors": [{"message": "internal error"}]})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._json(400, {"errors": [{"field": None, "message": "Bad Request"}]})
                return
            errors = validate_mail_send(body)
            if errors or answer == "400":
                self._json(
                    400,
                    {
                        "errors": errors
                        or [
                            {
                                "field": "from.email",
                                "message": "The from address does not match a verified Sender Identity.",
                            }
                        ]
                    },
                )
                return
            mid = self._accept(raw, body)
            time.sleep(state.latency)
            self._json(202, None, {"X-Message-Id": mid})

        def _accept(self, raw: bytes, body: Any = None) -> str:
            body = body if body is not None else json.loads(raw)
            with state.lock:
                mid = f"sg{len(state.requests):06d}"
                state.requests.append(
                    body if state.keep_bodies else {"n": len(body["personalizations"])}
                )
                for p in body["personalizations"]:
                    for t in p["to"]:
                        state.delivered[t["email"].lower()] += 1
            return mid

        def do_GET(self) -> None:
            if not self._authorized():
                return
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            items = state.suppressions.get(path, [])
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 500))
            self._json(200, items[offset : offset + limit])

    return Handler


class SendGridServer:
    def __init__(self, api_key: str = "SG.test-key") -> None:
        self.state = SendGridState(api_key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> SendGridServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_uvicorn(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 until the generator is closed."""
    import uvicorn

    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    server = uvicorn.Server(config)  # as `mailer serve` runs it
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    from tests.conftest import wait_until

    wait_until(lambda: server.started, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
