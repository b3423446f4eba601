"""What every endpoint reads: the server's state, and the person a signed link names."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mailer.config import Settings
from mailer.feedback.apply import Rules
from mailer.sending.outbound import Outbound
from mailer.store import Store
from mailer.store.subscribers import Subscriber
from mailer.tokens import TokenSigner
from mailer.web.archive import Site
from mailer.web.challenge import ProofOfWork
from mailer.web.http import RateLimit
from mailer.web.pages import Pages


@dataclass
class ServeState:
    """What every endpoint reads, from request.app.state.mailer."""

    settings: Settings
    store: Store
    pages: Pages
    unsub: TokenSigner
    resub: TokenSigner
    confirm: TokenSigner
    limiter: RateLimit
    webhook_key: Any  # the parsed public key, or None when the webhook is off
    rules: Rules  # how reports act (soft bounces, address matching)
    # Webhook batches are applied one at a time, by one thread: they all write, and the
    # database takes one writer at a time anyway; one connection keeps its cache warm
    # (four threads each with its own cost a fifth more).
    ingest: concurrent.futures.ThreadPoolExecutor
    outbound: Outbound  # sends the confirmations the pages promise, after the response
    site: Site  # the archive's pages and feed
    pow: ProofOfWork  # the sign-up form's challenge
    clicks: TokenSigner  # counted links' tokens


def state_of(request: Request) -> ServeState:
    state: ServeState = request.app.state.mailer
    return state


async def subscriber_of(
    request: Request, signer: TokenSigner, count: int
) -> tuple[Subscriber, tuple[int, ...]] | None:
    """The living subscriber a link's token names (id and nonce must both match), and the
    token's numbers; None for anything forged, altered, or belonging to an erased person."""
    ids = signer.unsign(request.path_params["token"], count)
    if ids is None:
        return None
    s = await run_in_threadpool(state_of(request).store.subscribers.by_token, ids[0], ids[1])
    return (s, ids) if s is not None else None
