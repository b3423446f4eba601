"""The reader's pages: unsubscribe (RFC 8058 one-click), subscribe again, sign up, confirm.

GET never changes anything; POST acts. Every answer about a person masks their address and
is in their language. The sign-up answers the same for every address, and what could make
it a way to flood someone's inbox is bounded: a honeypot, a proof of work, a per-client
limit, one confirmation a day per address (store), and a bounded queue.
"""

from __future__ import annotations

import dataclasses

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mailer import addresses
from mailer.languages import display_name
from mailer.models import SUPPRESSED, SubscriberStatus
from mailer.sending.outbound import MAY_RESUBSCRIBE
from mailer.store.subscribers import Confirmed, Subscriber, clean_name
from mailer.web.http import client_of, negotiate, read_form
from mailer.web.pages import HONEYPOT, Field, Form, Pages
from mailer.web.state import ServeState, state_of, subscriber_of


async def unsubscribe_page(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    if s.status in SUPPRESSED:
        return _unsubscribed(st, s)
    p = st.pages.of(s.language)
    _ = p.gettext
    return p.render(
        _("Unsubscribe?"),
        [
            _("Stop sending %(newsletter)s to %(email)s?")
            % {"newsletter": st.settings.display_name, "email": addresses.mask(s.email)}
        ],
        Form(request.url.path, _("Unsubscribe"), hidden=[("List-Unsubscribe", "One-Click")]),
    )


def _unsubscribed(st: ServeState, s: Subscriber) -> Response:
    p = st.pages.of(s.language)
    _ = p.gettext
    lines = [
        _("%(email)s will get no more email from %(newsletter)s.")
        % {"email": addresses.mask(s.email), "newsletter": st.settings.display_name}
    ]
    if s.status not in MAY_RESUBSCRIBE:
        # Bounced or complained: coming back takes a new sign-up on the form, never a
        # button in an old email (whoever holds the email could press it).
        return p.render(_("You are unsubscribed"), lines)
    return p.render(
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
    p = st.pages.of(s.language)
    if s.status == SubscriberStatus.ACTIVE:
        return _subscribed(st, s, p.gettext("You are subscribed"))
    if s.status not in MAY_RESUBSCRIBE:
        return _unsubscribed(st, s)
    if not st.limiter.allow(f"resubscribe:{s.id}"):  # an old link must not flood the inbox
        return slow_down(p)
    await run_in_threadpool(st.store.queue.confirm, s.id)
    st.outbound.notify()
    return _check_inbox(p, s.email)


def slow_down(p: Pages) -> Response:
    _ = p.gettext
    return p.render(_("Slow down"), [_("Too many attempts; try again in a minute.")], status=429)


def busy(p: Pages) -> Response:
    """The queue of mail asked for by address is full: the same answer for anyone."""
    _ = p.gettext
    return p.render(
        _("Please try again later"),
        [_("Too many requests are waiting right now; try again in a few minutes.")],
        status=503,
    )


def page_language(st: ServeState, request: Request, asked: str | None = None) -> Pages:
    """The pages for a visitor nobody knows yet: the language the form says (or ?lang=),
    else what the browser asks for among the offered ones, else the list's."""
    offered = st.settings.offered_languages
    tag = asked or request.query_params.get("lang") or ""
    if tag not in offered:
        tag = negotiate(request.headers.get("accept-language", ""), offered) or ""
    return st.pages.of(tag)


def signup_form(
    st: ServeState,
    p: Pages,
    email: str = "",
    name: str = "",
    topics: frozenset[str] = frozenset(),
) -> Form:
    """The sign-up form: address, name, the topics and the language, a field only a bot
    fills, and (when on) the proof-of-work widget with a fresh challenge."""
    _ = p.gettext
    fields: list[Field | tuple[str, str, str]] = [
        Field("email", _("Email address"), "email", value=email, required=True),
        Field("name", _("Name (optional)"), "text", value=name),
    ]
    if len(st.settings.offered_languages) > 1:
        fields.append(
            Field(
                "language",
                _("Language"),
                "select",
                value=p.language,
                options=[(t, display_name(t, t)) for t in st.settings.offered_languages],
            )
        )
    else:
        fields.append(Field("language", "", "hidden", value=p.language))
    for t in st.settings.topics:
        chosen = t.key in topics or not topics  # every topic, until the reader chooses
        fields.append(Field("topic", t.name(p.language), "checkbox", value=t.key, checked=chosen))
    return Form(
        "/subscribe",
        _("Subscribe"),
        fields=fields,
        legend=_("Topics") if st.settings.topics else "",
        honeypot=True,
        challenge=st.pow.new() if st.pow.on else None,
        challenge_strings=challenge_strings(p),
    )


def challenge_strings(p: Pages) -> dict[str, str]:
    """The widget's words, in the page's language."""
    _ = p.gettext
    return {
        "label": _("I am not a robot"),
        "verifying": _("Checking…"),
        "verified": _("Done"),
        "error": _("That did not work; try again."),
        "expired": _("Expired; try again."),
        "waitAlert": _("Checking… please wait."),
    }


async def subscribe_page(request: Request) -> Response:
    st = state_of(request)
    p = page_language(st, request)
    _ = p.gettext
    return p.render(
        _("Subscribe to %(newsletter)s") % {"newsletter": st.settings.display_name},
        [_("We will send you an email to confirm.")],
        signup_form(st, p),
    )


async def subscribe(request: Request) -> Response:
    st = state_of(request)
    form = await read_form(request)
    p = page_language(st, request, form.get("language") if form is not None else None)
    _ = p.gettext
    title = _("Subscribe")
    if form is None or not form.get("email"):
        return p.render(title, [_("Please give an email address.")], signup_form(st, p), status=400)
    if form.get(HONEYPOT):  # only a bot fills what nobody sees: the usual answer, no mail
        return _check_inbox(p, form.get("email", ""))
    ip, ua = client_of(request)
    if not st.limiter.allow(ip or "?"):
        return slow_down(p)
    try:
        email = addresses.normalize(form["email"])
    except addresses.InvalidAddress:
        return p.render(
            title,
            [_("That address does not look right; check it and try again.")],
            signup_form(st, p, form["email"][:320], form.get("name", "")[:200]),
            status=400,
        )
    name = clean_name(form.get("name", ""))
    topics = _topics(st, form)
    if st.pow.on and not await run_in_threadpool(st.pow.passed, form.get("altcha")):
        # The form came from elsewhere (an archive page, another site) or the proof is
        # missing or spent: the same form again, filled in, with a fresh challenge.
        return p.render(
            title,
            [_("One more step: confirm you are not a robot, then subscribe.")],
            signup_form(st, p, email, name, topics),
            status=400 if form.get("altcha") else 200,
        )
    if await run_in_threadpool(st.store.queue.anonymous_waiting) >= st.settings.signup_queue_limit:
        return busy(p)
    choices: dict[str, object] = {"language": p.language}
    if st.settings.topics:
        choices["topics"] = sorted(topics)
    await run_in_threadpool(st.store.queue.signup, email, name, ip, ua, choices)
    st.outbound.notify()
    # The same work and the same answer whether the address was new, pending, subscribed
    # or suppressed: who it is is decided after the response, by the mail queue.
    return _check_inbox(p, email)


def _topics(st: ServeState, form: ImmutableMultiDict[str, str]) -> frozenset[str]:
    declared = set(st.settings.topic_keys())
    return frozenset(t for t in form.getlist("topic") if t in declared)


def _check_inbox(p: Pages, email: str) -> Response:
    _ = p.gettext
    return p.render(
        _("Check your inbox"),
        [
            _("If %(email)s can subscribe, a confirmation email is on its way.")
            % {"email": addresses.mask(email)}
        ],
    )


def _subscribed(st: ServeState, s: Subscriber, title: str) -> Response:
    p = st.pages.of(s.language)
    line = p.gettext("%(email)s gets %(newsletter)s.") % {
        "email": addresses.mask(s.email),
        "newsletter": st.settings.display_name,
    }
    return p.render(title, [line])


async def confirm_page(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.confirm, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    p = st.pages.of(s.language)
    _ = p.gettext
    if s.status == SubscriberStatus.ACTIVE:  # a used link: say so, no button to press again
        return _subscribed(st, s, _("You are already subscribed"))
    return p.render(
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
    if result is Confirmed.CONFIRMED:
        st.outbound.notify()  # the welcome mail, if there is one, goes out after this page
        now = await run_in_threadpool(st.store.subscribers.by_id, sid)  # their language now
        s = now if now is not None else s
        return _subscribed(st, s, st.pages.of(s.language).gettext("You are subscribed"))
    p = st.pages.of(s.language)
    _ = p.gettext
    if result is Confirmed.ALREADY:
        return _subscribed(st, s, _("You are already subscribed"))
    return p.render(
        _("This link has expired"),
        [
            _("This confirmation link was used already, or a newer one was sent."),
            _("To subscribe, use the newest email, or sign up again."),
        ],
        status=410,
    )
