"""The preference page: a reader's topics, language, a pause of 1 to 8 weeks, their name,
or unsubscribing from everything. Reached from every email's footer (the link carries the
same signed token as the unsubscribe link) or by asking for a link at /manage.

GET shows, POST changes; every change is written to the reader's history with its source.
"""

from __future__ import annotations

import datetime as dt

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response

from mailer import addresses
from mailer.languages import display_name
from mailer.sending.outbound import MAY_RESUBSCRIBE
from mailer.store.preferences import Choices
from mailer.store.subscribers import Subscriber
from mailer.web.http import client_of, read_form
from mailer.web.pages import HONEYPOT, Field, Form, Pages
from mailer.web.state import ServeState, state_of, subscriber_of
from mailer.web.subscription import busy, page_language, slow_down

PAUSE_WEEKS = range(1, 9)


async def preferences_page(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    return _page(st, request, found[0])


async def preferences_post(request: Request) -> Response:
    st = state_of(request)
    found = await subscriber_of(request, st.unsub, 3)
    if found is None:
        return st.pages.not_found()
    s = found[0]
    form = await read_form(request)
    if form is None:
        p = st.pages.of(s.language)
        return _page(st, request, s, p.gettext("That form could not be read."), status=400)
    choices = _choices(st, form)
    s, changed = await run_in_threadpool(
        st.store.preferences.change, s.id, choices, "web:preferences"
    )
    p = st.pages.of(s.language)  # the answer in the language just chosen
    _ = p.gettext
    return _page(st, request, s, _("Saved.") if changed else _("Nothing changed."))


def _choices(st: ServeState, form: ImmutableMultiDict[str, str]) -> Choices:
    """What the form asks for, keeping only what the newsletter offers."""
    declared = set(st.settings.topic_keys())
    topics = frozenset(t for t in form.getlist("topic") if t in declared) if declared else None
    language = form.get("language")
    if language not in st.settings.offered_languages:
        language = None
    pause, until, resume = form.get("pause", ""), None, False
    if pause == "resume":
        resume = True
    elif pause.isdigit() and int(pause) in PAUSE_WEEKS:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(weeks=int(pause))
    name = form.get("name")
    return Choices(
        topics=topics,
        language=language,
        paused_until=until,
        resume=resume,
        name=name[:200] if name is not None else None,
    )


def _page(
    st: ServeState, request: Request, s: Subscriber, notice: str = "", status: int = 200
) -> Response:
    p = st.pages.of(s.language)
    _ = p.gettext
    path = request.url.path
    fields: list[Field | tuple[str, str, str]] = [
        Field("name", _("Name (optional)"), "text", value=s.name)
    ]
    offered = st.settings.offered_languages
    if len(offered) > 1:
        fields.append(
            Field(
                "language",
                _("Language"),
                "select",
                value=s.language or st.settings.language,
                options=[(t, display_name(t, t)) for t in offered],
            )
        )
    now = dt.datetime.now(dt.UTC)
    pauses = [("", _("Keep sending"))]
    if s.paused(now):
        pauses = [("", _("Stay paused")), ("resume", _("Start sending again now"))]
    pauses += [(str(n), _("Pause for %(n)d week(s)") % {"n": n}) for n in PAUSE_WEEKS]
    fields.append(Field("pause", _("Pause"), "select", options=pauses))
    for t in st.settings.topics:
        fields.append(
            Field("topic", t.name(p.language), "checkbox", value=t.key, checked=t.key in s.topics)
        )
    lines = [
        _("Preferences for %(email)s.") % {"email": addresses.mask(s.email)},
    ]
    if s.paused(now) and s.paused_until is not None:
        lines.append(_("Paused until %(date)s.") % {"date": f"{s.paused_until:%Y-%m-%d}"})
    if s.status != "active":
        lines.append(_("You are unsubscribed"))
    forms = [
        Form(
            path,
            _("Save"),
            fields=fields,
            legend=_("Topics") if st.settings.topics else "",
        )
    ]
    unsubscribe_path = path.rsplit("/", 1)[0]  # /u/TOKEN: the one-click endpoint
    if s.status == "active":
        forms.append(
            Form(
                unsubscribe_path,
                _("Unsubscribe from everything"),
                hidden=[("List-Unsubscribe", "One-Click")],
                style="secondary",
            )
        )
    elif s.status in MAY_RESUBSCRIBE:
        forms.append(
            Form(
                f"/resubscribe/{st.resub.sign(s.id, s.nonce)}",
                _("Subscribe again"),
                style="secondary",
            )
        )
    return p.render(_("Your preferences"), lines, forms=forms, notice=notice, status=status)


# -- /manage: a link to the page, for a reader without an email at hand -------------------


async def manage_page(request: Request) -> Response:
    st = state_of(request)
    p = page_language(st, request)
    return _manage(p)


def _manage(p: Pages, line: str = "", status: int = 200) -> Response:
    _ = p.gettext
    return p.render(
        _("Your preferences"),
        [line or _("Give your address and we will email you a link to your preferences.")],
        Form(
            "/manage",
            _("Email me a link"),
            fields=[
                Field("email", _("Email address"), "email", required=True),
                Field("language", "", "hidden", value=p.language),
            ],
            honeypot=True,
        ),
        status=status,
    )


async def manage_post(request: Request) -> Response:
    """The same answer, after the same one INSERT, for any address: whether it is on the
    list is decided by the mail queue, after the response."""
    st = state_of(request)
    form = await read_form(request)
    p = page_language(st, request, form.get("language") if form is not None else None)
    _ = p.gettext
    if form is None or not form.get("email"):
        return _manage(p, _("Please give an email address."), status=400)
    sent = _sent(p, form.get("email", ""))
    if form.get(HONEYPOT):
        return sent
    ip, _ua = client_of(request)
    if not st.limiter.allow(ip or "?"):
        return slow_down(p)
    try:
        email = addresses.normalize(form["email"])
    except addresses.InvalidAddress:
        return _manage(p, _("That address does not look right; check it and try again."), 400)
    if await run_in_threadpool(st.store.queue.anonymous_waiting) >= st.settings.signup_queue_limit:
        return busy(p)
    await run_in_threadpool(st.store.queue.link, email, ip)
    st.outbound.notify()
    return _sent(p, email)


def _sent(p: Pages, email: str) -> Response:
    _ = p.gettext
    return p.render(
        _("Check your inbox"),
        [
            _("If %(email)s is on the list, a link to your preferences is on its way.")
            % {"email": addresses.mask(email)}
        ],
    )
