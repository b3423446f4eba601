"""The bounce mailbox over IMAP (imapclient): TLS by default, read without marking, moved
to a folder once handled, never deleted. Sizes are asked before bodies, so a message too
large to read is never downloaded."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from mailer.config import Settings
from mailer.errors import ConfigError, DeliveryError

BATCH_BYTES = 8 * 1024 * 1024  # bodies fetched in one FETCH, at most about this much


class Mailbox:
    def __init__(self, settings: Settings) -> None:
        settings.require("bounce_imap_url", "bounce_imap_password")
        url = urlsplit(settings.bounce_imap_url)
        self.where = f"{url.hostname}:{url.port or (993 if url.scheme == 'imaps' else 143)}"
        self.url = url
        self.folder = unquote(url.path.lstrip("/")) or "INBOX"
        # What names this mailbox for the UIDs remembered from it.
        self.key = f"{unquote(url.username or '')}@{self.where}/{self.folder}"[:300]
        self.settings = settings
        self.client: Any = None
        self.validity = 0  # the folder's UIDVALIDITY, once selected

    def __enter__(self) -> Mailbox:
        import imapclient

        try:
            self.client = self._open()
        except ssl.SSLCertVerificationError as e:
            raise DeliveryError(
                f"bounce mailbox {self.where}: its TLS certificate is not trusted "
                f"({e.verify_message}); check the host, or trust its CA with bounce_imap_ca_file"
            ) from None
        except OSError as e:
            raise DeliveryError(
                f"cannot reach the bounce mailbox {self.where} ({e}); check bounce_imap_url"
            ) from None
        except imapclient.exceptions.IMAPClientError as e:
            raise DeliveryError(
                f"bounce mailbox {self.where} refused: {e}; check bounce_imap_url and "
                "MAILER_BOUNCE_IMAP_PASSWORD"
            ) from None
        return self

    def _open(self) -> Any:
        """A logged-in client with the folder selected; its socket closed if any step fails."""
        import imapclient

        s, url = self.settings, self.url
        context = ssl.create_default_context()
        if s.bounce_imap_ca_file:
            try:
                context.load_verify_locations(cafile=str(s.path(s.bounce_imap_ca_file)))
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"bounce_imap_ca_file: cannot load it ({e})") from None
        implicit = url.scheme == "imaps"
        client = imapclient.IMAPClient(
            url.hostname, port=url.port, ssl=implicit, ssl_context=context, timeout=30
        )
        try:
            if not implicit:
                client.starttls(context)
            client.login(unquote(url.username or ""), s.bounce_imap_password)
            selected = client.select_folder(self.folder)
            self.validity = int(selected.get(b"UIDVALIDITY", 0))
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        client = self.client
        self.client = None
        if client is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to tidy
                client.logout()

    def uids(self) -> list[int]:
        return sorted(int(u) for u in self._client().search("ALL"))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each message, without downloading any."""
        if not uids:
            return {}
        fetched = self._client().fetch(uids, ["RFC822.SIZE"])
        return {int(uid): int(data.get(b"RFC822.SIZE", 0)) for uid, data in fetched.items()}

    def bodies(self, sizes: dict[int, int]) -> Iterator[tuple[int, bytes]]:
        """(uid, raw bytes) of these messages, read with BODY.PEEK (unmarked), a few
        megabytes a FETCH."""
        client = self._client()
        batch: list[int] = []
        total = 0
        for uid in sorted(sizes):
            batch.append(uid)
            total += sizes[uid]
            if total >= BATCH_BYTES:
                yield from self._fetch(client, batch)
                batch, total = [], 0
        yield from self._fetch(client, batch)

    @staticmethod
    def _fetch(client: Any, uids: list[int]) -> Iterator[tuple[int, bytes]]:
        if not uids:
            return
        fetched = client.fetch(uids, ["BODY.PEEK[]"])
        for uid in uids:
            raw = fetched.pop(uid, {}).get(b"BODY[]")
            if isinstance(raw, bytes):
                yield uid, raw

    def flag(self, uids: list[int]) -> None:
        """Star them for a human (\\Flagged), who will find them in any mail client."""
        if uids:
            self._client().add_flags(uids, [b"\\Flagged"])

    def move(self, uids: list[int], folder: str) -> None:
        """To `folder` (created if missing): MOVE where offered, else COPY then expunge."""
        if not uids:
            return
        import imapclient

        client = self._client()
        if not client.folder_exists(folder):
            try:
                client.create_folder(folder)
            except imapclient.exceptions.IMAPClientError:
                if not client.folder_exists(folder):  # else another fetch made it meanwhile
                    raise
        if client.has_capability("MOVE"):
            try:
                client.move(uids, folder)
            except imapclient.exceptions.IMAPClientError:
                # Another fetch (a second `mailer serve`) moved some of them first: move
                # the ones still here; an error now is real.
                here = sorted(set(uids) & set(self.uids()))
                if here:
                    client.move(here, folder)
            return
        client.copy(uids, folder)
        client.delete_messages(uids)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    def _client(self) -> Any:
        assert self.client is not None, "use Mailbox as a context manager"
        return self.client
