"""`mailer stats`: the list's weeks and each issue's funnel, for the terminal (sparklines and
bars), for scripts (JSON) and as one self-contained page (inline SVG charts by pygal, no
request leaves it), which `mailer serve` also shows at /stats behind stats_token."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from mailer.config import Settings
from mailer.content.issue_files import welcome_slug
from mailer.desk.guard import BOUNCE_WARN, COMPLAINT_HARD, COMPLAINT_WARN
from mailer.store import Store, open_store
from mailer.store.stats import Funnel, Week

TEMPLATES = Path(__file__).parent / "templates"
SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class ListStats:
    today: dt.date
    active: int
    weeks: list[Week]
    issues: list[Funnel]

    def as_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "active": self.active,
            "weeks": [
                {
                    "week_of": w.start.isoformat(),
                    "subscribed": w.subscribed,
                    "confirmed": w.confirmed,
                    "unsubscribed": w.unsubscribed,
                    "bounced": w.bounced,
                    "complained": w.complained,
                    "net": w.net,
                }
                for w in self.weeks
            ],
            "issues": [
                {
                    "slug": f.slug,
                    "subject": f.subject,
                    "sent_at": f.sent_at.isoformat(timespec="seconds"),
                    "sent": f.sent,
                    "delivered": f.delivered,
                    "opened": f.opened,
                    "clicked": f.clicked,
                    "unsubscribed": f.unsubscribed,
                    "complained": f.complained,
                    "bounced": f.bounced,
                    "complaint_rate": round(f.rate(f.complained), 5),
                    "bounce_rate": round(f.rate(f.bounced), 5),
                    "top_links": [{"url": u, "clicks": c} for u, c in f.link_clicks],
                }
                for f in self.issues
            ],
        }


def gather(settings: Settings, today: dt.date, weeks: int = 12, issues: int = 12) -> ListStats:
    with open_store(settings) as store:
        return from_store(settings, store, today, weeks, issues)


def from_store(
    settings: Settings, store: Store, today: dt.date, weeks: int = 12, issues: int = 12
) -> ListStats:
    return ListStats(
        today,
        store.stats.active(),
        store.stats.weeks(today, weeks),
        store.stats.funnels(issues, exclude=welcome_slug(settings)),
    )


def sparkline(values: list[int]) -> str:
    """▁▂▅█ for a few numbers (all equal: a flat line)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[round((v - low) / (high - low) * (len(SPARKS) - 1))] for v in values)


def bar(part: int, whole: int, width: int = 20) -> str:
    """A bar of `part` out of `whole`, in eighths of a cell."""
    if whole <= 0:
        return ""
    eighths = round(min(part / whole, 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[rest] if rest else "")


def percent(x: float) -> str:
    return f"{x * 100:.2f}%"


# -- the page -------------------------------------------------------------------------------


def html_page(settings: Settings, stats: ListStats) -> str:
    """One page, nothing fetched: the charts are inline SVG without scripts."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("stats.html.j2").render(
        newsletter_name=settings.display_name,
        lang=settings.language,
        stats=stats,
        growth_chart=Markup(_growth_chart(stats)),
        funnel_chart=Markup(_funnel_chart(stats)),
        rates_chart=Markup(_rates_chart(stats)),
        percent=percent,
        lines={
            "complaint_warn": percent(COMPLAINT_WARN),
            "complaint_hard": percent(COMPLAINT_HARD),
            "bounce_warn": percent(BOUNCE_WARN),
        },
    )


def _config(title: str) -> dict[str, Any]:
    import pygal
    from pygal.style import Style

    style = Style(
        background="transparent",
        plot_background="transparent",
        font_family="-apple-system, 'Segoe UI', 'PingFang SC', 'Noto Sans CJK SC', sans-serif",
        colors=("#0b63ce", "#1a7f37", "#cf222e", "#8250df", "#bf8700", "#57606a"),
    )
    return {
        "title": title,
        "style": style,
        "js": [],  # pygal's tooltips load a script from a CDN: none here
        "disable_xml_declaration": True,
        "width": 760,
        "height": 320,
        "legend_at_bottom": True,
        "print_values": False,
        "x_label_rotation": 30,
        "truncate_label": 24,
        "show_minor_x_labels": True,
        "config": pygal.Config,
    }


def _without_scripts(root: Any) -> Any:
    """pygal's hook on the SVG tree before it is written: every <script> goes."""
    for parent in list(root.iter()):
        for child in list(parent):
            if str(child.tag).endswith("script"):
                parent.remove(child)
    return root


def _svg(chart: Any) -> str:
    chart.add_xml_filter(_without_scripts)  # nor its inline config: a chart is a picture
    svg: str = chart.render(is_unicode=True)
    return svg


def _growth_chart(stats: ListStats) -> str:
    import pygal

    options = _config("The list, week by week")
    options.pop("config")
    chart = pygal.Bar(**options)
    chart.x_labels = [w.start.strftime("%m-%d") for w in stats.weeks]
    chart.add("joined", [w.joined for w in stats.weeks])
    chart.add("left", [-w.left for w in stats.weeks])
    chart.add("net", [w.net for w in stats.weeks])
    return _svg(chart)


def _funnel_chart(stats: ListStats) -> str:
    import pygal

    options = _config("Each issue: sent, delivered, opened, clicked")
    options.pop("config")
    chart = pygal.Bar(**options)
    chart.x_labels = [f.slug for f in stats.issues]
    for name in ("sent", "delivered", "opened", "clicked"):
        chart.add(name, [getattr(f, name) for f in stats.issues])
    return _svg(chart)


def _rates_chart(stats: ListStats) -> str:
    import pygal

    options = _config(
        "Complaints and hard bounces, % of sent, against the mailbox providers' lines"
    )
    options.pop("config")
    chart = pygal.Line(**options, value_formatter=lambda v: f"{v:.2f}%")
    chart.x_labels = [f.slug for f in stats.issues]
    n = len(stats.issues)
    chart.add("complaint rate", [round(f.rate(f.complained) * 100, 3) for f in stats.issues])
    chart.add("hard-bounce rate", [round(f.rate(f.bounced) * 100, 3) for f in stats.issues])
    chart.add("Gmail's guidance 0.1%", [COMPLAINT_WARN * 100] * n, show_dots=False)
    chart.add("Gmail and Yahoo's line 0.3%", [COMPLAINT_HARD * 100] * n, show_dots=False)
    chart.add("bounces 2%", [BOUNCE_WARN * 100] * n, show_dots=False)
    return _svg(chart)
