"""SendGrid's Event Webhook: signed batches, read event by event, applied in a few statements."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailer.config import Settings
from mailer.errors import ConfigError
from mailer.feedback.apply import Applied, Outcome, apply_batch
from mailer.providers.sendgrid import webhook
from mailer.web.http import TooLarge, log, read_body
from mailer.web.state import ServeState, state_of

WEBHOOK_LIMIT = 8 * 1024 * 1024
WEBHOOK_DEADLINE = 10.0  # seconds: SendGrid gives up on a request not answered in time


async def sendgrid_webhook(request: Request) -> Response:
    """Validate (headers, then body and signature), read each event on its own, apply the
    batch in a few statements. An answer within WEBHOOK_DEADLINE: past it (a database that
    is locked or slow) a 503, and SendGrid posts the batch again; what was applied of it
    meanwhile is found recorded and dropped as duplicates."""
    st = state_of(request)
    if st.webhook_key is None:
        return PlainTextResponse("webhook not configured: set sendgrid_webhook_public_key", 403)
    ts = request.headers.get(webhook.TIMESTAMP_HEADER) or ""
    signature = request.headers.get(webhook.SIGNATURE_HEADER) or ""
    try:
        webhook.check_headers(signature, ts)
    except webhook.BadSignature as e:
        return PlainTextResponse("missing signature" if "missing" in str(e) else str(e), 401)
    try:
        body = await read_body(request, WEBHOOK_LIMIT)
    except TooLarge:
        return PlainTextResponse("body too large", 413)
    try:
        webhook.verify(st.webhook_key, signature, ts, body)
    except webhook.BadSignature:
        return PlainTextResponse("signature not valid", 403)
    # Read and applied in a worker thread: the event loop keeps answering meanwhile.
    work = asyncio.get_running_loop().run_in_executor(st.ingest, _ingest, st, body)
    try:
        applied, unreadable = await asyncio.wait_for(asyncio.shield(work), WEBHOOK_DEADLINE)
    except webhook.BadPayload as e:
        return PlainTextResponse(str(e), 400)
    except TimeoutError:
        log.warning("webhook: a batch took over %ss; answered 503 for a retry", WEBHOOK_DEADLINE)
        return PlainTextResponse("busy; post again", 503)
    counts = applied.counts
    rejected = unreadable + counts[Outcome.REJECTED]
    if rejected:
        log.warning("webhook: %d event(s) rejected as unreadable or unstorable", rejected)
    duplicates = counts[Outcome.DUPLICATE]
    recorded = counts.total() - duplicates - counts[Outcome.REJECTED]
    return PlainTextResponse(
        f"recorded {recorded}, duplicates {duplicates}, rejected {rejected}", 200
    )


def _ingest(st: ServeState, body: bytes) -> tuple[Applied, int]:
    parsed, unreadable = webhook.parse(body)
    return apply_batch(st.store.engine, parsed, st.rules), unreadable


def webhook_key(settings: Settings) -> Any:
    if not settings.sendgrid_webhook_public_key:
        return None
    try:
        return webhook.load_public_key(settings.sendgrid_webhook_public_key)
    except webhook.BadKey as e:
        raise ConfigError(
            f"sendgrid_webhook_public_key {e}; copy it again from SendGrid's Mail Settings → "
            "Event Webhook → Signature Verification"
        ) from None
