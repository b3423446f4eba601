"""The reader's pages: unsubscribe (RFC 8058 one-click), subscribe again, sign up, confirm.

GET never changes anything; POST acts. Every answer about a person masks their address.
"""

from __future__ import annotations

import dataclasses

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailer import addresses
from mailer.models import SUPPRESSED, SubscriberStatus
from mailer.sending.outbound import MAY_RESUBSCRIBE
from mailer.store.subscribers import Confirmed, Subscriber, clean_name
from mailer.web.http import client_of, read_form
from mailer.web.pages import Form
from mailer.web.state import ServeState, state_of, subscriber_of


async def unsubscribe_page(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    if s.status in SUPPRESSED:
        return _unsubscribed(st, s)
    _ = st.pages.gettext
    return st.pages.render(
        _("Unsubscribe?"),
        [
            _("Stop sending %(newsletter)s to %(email)s?")
            % {"newsletter": st.settings.display_name, "email": addresses.mask(s.email)}
        ],
        Form(request.url.path, _("Unsubscribe"), hidden=[("List-Unsubscribe", "One-Click")]),
    )


def _unsubscribed(st: ServeState, s: Subscriber) -> Response:
    _ = st.pages.gettext
    lines = [
        _("%(email)s will get no more email from %(newsletter)s.")
        % {"email": addresses.mask(s.email), "newsletter": st.settings.display_name}
    ]
    if s.status not in MAY_RESUBSCRIBE:
        # Bounced or complained: coming back takes a new sign-up on the form, never a
        # button in an old email (whoever holds the email could press it).
        return st.pages.render(_("You are unsubscribed"), lines)
    return st.pages.render(
        _("You are unsubscribed"),
        lines,
        Form(
            f"/resubscribe/{st.resub.sign(s.id, s.nonce)}", _("Subscribe again"), style="secondary"
        ),
    )


async def unsubscribe(request: Request) -> Response:
    """RFC 8058 one-click: acts at once, answers 2xx, idempotent."""
    st = state_of(request)
    form = await read_form(request)
    if form is None or form.get("List-Unsubscribe") != "One-Click":
        return PlainTextResponse("Expected the form field List-Unsubscribe=One-Click.", 400)
    found = await subscriber_of(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    s, (_, _, ref) = found
    if await run_in_threadpool(st.store.events.one_click_unsubscribe, s.id, ref):
        s = dataclasses.replace(s, status=SubscriberStatus.UNSUBSCRIBED)
    return _unsubscribed(st, s)


async def resubscribe(request: Request) -> Response:
    """Coming back takes a fresh double opt-in: the button sends a confirmation email."""
    st = state_of(request)
    found = await subscriber_of(request, st.resub, 2)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    if s.status == SubscriberStatus.ACTIVE:
        return _subscribed(st, s, st.pages.gettext("You are subscribed"))
    if s.status not in MAY_RESUBSCRIBE:
        return _unsubscribed(st, s)
    if not st.limiter.allow(f"resubscribe:{s.id}"):  # an old link must not flood the inbox
        return _slow_down(st)
    await run_in_threadpool(st.store.queue.confirm, s.id)
    st.outbound.notify()
    return _check_inbox(st, s.email)


def _slow_down(st: ServeState) -> Response:
    _ = st.pages.gettext
    return st.pages.render(
        _("Slow down"), [_("Too many attempts; try again in a minute.")], status=429
    )


async def subscribe_page(request: Request) -> Response:
    st = state_of(request)
    _ = st.pages.gettext
    return st.pages.render(
        _("Subscribe to %(newsletter)s") % {"newsletter": st.settings.display_name},
        [_("We will send you an email to confirm.")],
        Form(
            "/subscribe",
            _("Subscribe"),
            fields=[
                ("email", _("Email address"), "email"),
                ("name", _("Name (optional)"), "text"),
            ],
        ),
    )


async def subscribe(request: Request) -> Response:
    st = state_of(request)
    _ = st.pages.gettext
    form = await read_form(request)
    if form is None or not form.get("email"):
        return st.pages.render(_("Subscribe"), [_("Please give an email address.")], status=400)
    ip, ua = client_of(request)
    if not st.limiter.allow(ip or "?"):
        return _slow_down(st)
    try:
        email = addresses.normalize(form["email"])
    except addresses.InvalidAddress as e:
        return st.pages.render(
            _("Subscribe"),
            [_("That address does not look right: %(reason)s") % {"reason": e}],
            status=400,
        )
    name = clean_name(form.get("name", ""))
    await run_in_threadpool(st.store.queue.signup, email, name, ip, ua)
    st.outbound.notify()
    # The same work and the same answer whether the address was new, pending, subscribed
    # or suppressed: who it is is decided after the response, by the mail queue.
    return _check_inbox(st, email)


def _check_inbox(st: ServeState, email: str) -> Response:
    _ = st.pages.gettext
    return st.pages.render(
        _("Check your inbox"),
        [
            _("If %(email)s can subscribe, a confirmation email is on its way.")
            % {"email": addresses.mask(email)}
        ],
    )


def _subscribed(st: ServeState, s: Subscriber, title: str) -> Response:
    line = st.pages.gettext("%(email)s gets %(newsletter)s.") % {
        "email": addresses.mask(s.email),
        "newsletter": st.settings.display_name,
    }
    return st.pages.render(title, [line])


async def confirm_page(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.confirm, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    _ = st.pages.gettext
    return st.pages.render(
        _("Confirm your subscription"),
        [
            _("Subscribe %(email)s to %(newsletter)s?")
            % {"email": addresses.mask(s.email), "newsletter": st.settings.display_name}
        ],
        Form(request.url.path, _("Confirm")),
    )


async def confirm_post(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.confirm, 3)
    if found is None:
        return st.pages.not_found()
    s, (sid, nonce, confirm_nonce) = found
    ip, ua = client_of(request)
    result = await run_in_threadpool(
        st.store.subscribers.confirm, sid, nonce, confirm_nonce, ip, ua
    )
    _ = st.pages.gettext
    if result is Confirmed.CONFIRMED:
        st.outbound.notify()  # the welcome mail, if there is one, goes out after this page
        return _subscribed(st, s, _("You are subscribed"))
    if result is Confirmed.ALREADY:
        return _subscribed(st, s, _("You are already subscribed"))
    return st.pages.render(
        _("This link has expired"),
        [
            _("This confirmation link was used already, or a newer one was sent."),
            _("To subscribe, use the newest email, or sign up again."),
        ],
        status=410,
    )
