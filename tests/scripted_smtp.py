"""A raw-socket SMTP server that answers from a script: the replies of a pipelined group
(RFC 2920), and connections dropped at any point of one, exactly where a test wants them."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

# script(message_number, stage) -> a reply line, "DROP" (hang up without answering), or None
# for the normal answer. Stages: MAIL, RCPT, DATA, END (after the final dot). Messages are
# numbered from 1 in the order their MAIL commands arrive, across connections.
Script = Callable[[int, str], str | None]
NORMAL = {
    "MAIL": "250 2.1.0 OK",
    "RCPT": "250 2.1.5 OK",
    "DATA": "354 go ahead",
    "END": "250 2.0.0 queued",
}


@dataclass
class Received:
    number: int
    rcpt: str
    body: bytes
    answered: str  # what the server said after the final dot ("DROP" if nothing)


@dataclass
class ScriptedSmtp:
    script: Script = lambda n, stage: None
    pipelining: bool = True
    received: list[Received] = field(default_factory=list)
    ahead: int = 0  # final dots after which the next command had already arrived
    # Counting `ahead` waits this long after each final dot for the next command (the
    # client wrote it in the same sendall, so it is on its way): opt-in, generous for a
    # busy machine, and paid only after a group's last message, which nothing follows.
    ahead_wait: float = 0.0
    connections: int = 0
    refuse_after: int = 0  # close the listening socket after this many connections (0: never)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedSmtp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def delivered(self) -> list[str]:
        """Recipients whose message the server accepted (250 after the final dot)."""
        return [r.rcpt for r in self.received if r.answered.startswith("250")]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()
            if self.refuse_after and self.connections >= self.refuse_after:
                self.sock.close()
                return

    def _session(self, conn: socket.socket) -> None:
        reader = _Lines(conn)
        try:
            conn.sendall(b"220 scripted ESMTP\r\n")
            number, rcpt, refused = 0, "", False
            while True:
                line = reader.line()
                if line is None:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    ext = b"250-PIPELINING\r\n" if self.pipelining else b""
                    conn.sendall(b"250-scripted\r\n" + ext + b"250 8BITMIME\r\n")
                    continue
                if verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                if verb == b"RSET":
                    refused = False
                    conn.sendall(b"250 OK\r\n")
                    continue
                if verb == b"MAIL":
                    with self.lock:
                        self.count += 1
                        number = self.count
                    stage = "MAIL"
                elif verb == b"RCPT":
                    rcpt = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                    stage = "RCPT"
                elif verb == b"DATA":
                    stage = "DATA"
                else:
                    conn.sendall(b"502 5.5.2 unknown\r\n")
                    continue
                reply = self.script(number, stage)
                if reply == "DROP":
                    return
                if stage == "DATA" and refused and reply is None:
                    reply = "554 5.5.1 no valid recipients"
                reply = reply or NORMAL[stage]
                if stage in ("MAIL", "RCPT") and not reply.startswith("2"):
                    refused = True
                conn.sendall(reply.encode() + b"\r\n")
                if stage == "DATA" and reply.startswith("354"):
                    body = reader.body()
                    if body is None:
                        return
                    if self.ahead_wait and reader.more_within(self.ahead_wait):
                        self.ahead += 1
                    end = self.script(number, "END") or NORMAL["END"]
                    self.received.append(Received(number, rcpt, body, end))
                    if end == "DROP":
                        return
                    conn.sendall(end.encode() + b"\r\n")
        except OSError:
            return
        finally:
            conn.close()


class _Lines:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = b""

    def _fill(self) -> bool:
        data = self.conn.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def body(self) -> bytes | None:
        while b"\r\n.\r\n" not in self.buf and not self.buf.startswith(b".\r\n"):
            if not self._fill():
                return None
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return b""
        body, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return body + b"\r\n"

    def more_within(self, seconds: float) -> bool:
        """Did the client send on without waiting for this reply? (Pipelining.)"""
        if self.buf:
            return True
        readable, _, _ = select.select([self.conn], [], [], seconds)
        return bool(readable)
