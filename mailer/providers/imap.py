"""The bounce mailbox over IMAP (imapclient): TLS by default, read without marking, moved
to a folder once handled, never deleted."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from mailer.config import Settings
from mailer.errors import ConfigError, DeliveryError

BATCH = 50


class Mailbox:
    def __init__(self, settings: Settings) -> None:
        settings.require("bounce_imap_url", "bounce_imap_password")
        url = urlsplit(settings.bounce_imap_url)
        self.where = f"{url.hostname}:{url.port or (993 if url.scheme == 'imaps' else 143)}"
        self.url = url
        self.folder = unquote(url.path.lstrip("/")) or "INBOX"
        self.settings = settings
        self.client: Any = None

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
            client.select_folder(self.folder)
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

    def messages(self) -> Iterator[tuple[int, bytes]]:
        """(uid, raw bytes) of every message in the folder, read with BODY.PEEK (unmarked)."""
        client = self._client()
        uids = sorted(client.search("ALL"))
        for i in range(0, len(uids), BATCH):
            fetched = client.fetch(uids[i : i + BATCH], ["BODY.PEEK[]"])
            for uid in uids[i : i + BATCH]:
                data = fetched.get(uid, {})
                raw = data.get(b"BODY[]")
                if isinstance(raw, bytes):
                    yield uid, raw

    def move(self, uids: list[int], folder: str) -> None:
        """To `folder` (created if missing): MOVE where offered, else COPY then expunge."""
        if not uids:
            return
        client = self._client()
        if not client.folder_exists(folder):
            client.create_folder(folder)
        if client.has_capability("MOVE"):
            client.move(uids, folder)
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
