"""One rule per setting, checked once when settings load: each takes the coerced value and
returns its normal form, or raises ValueError with the reason (config adds which setting
and where it came from)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mailer import addresses, languages
from mailer.text import is_one_line


def _one_line(value: str) -> str:
    if not is_one_line(value):
        raise ValueError("contains a line break or control character")
    return value


def _address(value: str) -> str:

    if not value:
        return value
    try:
        return addresses.normalize(_one_line(value))
    except addresses.InvalidAddress as e:
        raise ValueError(f"is not one email address ({e})") from None


def _url(value: str, query: bool = False) -> str:
    """An absolute http(s) URL without credentials, query or fragment; an IDN host becomes
    its ASCII (punycode) form, since it goes into mail headers."""
    if not value:
        return value
    _one_line(value)
    if any(c.isspace() for c in value):
        raise ValueError("contains spaces")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username or parts.password or (parts.query and not query) or parts.fragment:
        raise ValueError("must not carry a user, a query or a fragment")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
        port = parts.port
    except (UnicodeError, ValueError):
        raise ValueError("has a host or port that cannot be used") from None
    netloc = host if port is None else f"{host}:{port}"
    if not parts.path.isascii():
        raise ValueError("must be ASCII after the host (percent-encode the path)")
    bad = next((c for c in parts.path + parts.query if c not in _URL_CHARS), None)
    if bad is not None:  # "<", ">" or '"' would end List-Unsubscribe's <...> or an attribute
        raise ValueError(f"holds {bad!r}, which a URL cannot carry (percent-encode it)")
    if parts.query:
        return f"{parts.scheme}://{netloc}{parts.path}?{parts.query}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


# RFC 3986's unreserved and reserved characters, and % for escapes.
_URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


def domain_name(value: str) -> str:
    """A domain for DKIM's d=: LDH labels (an IDN becomes punycode), at most 253 characters."""
    try:
        ascii_name = value.strip().rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("is not a domain name") from None
    if len(ascii_name) > 253 or not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})+", ascii_name):
        raise ValueError("is not a domain name (letters, digits, '-' and dots, e.g. example.com)")
    return ascii_name.lower()


def dkim_selector(value: str) -> str:
    """A selector (RFC 6376 §3.1): dot-separated labels of letters, digits and '-'."""
    if not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", value) or len(value) > 253:
        raise ValueError("must be DNS labels: letters, digits and '-', dot-separated")
    return value


def _imap_url(value: str) -> str:
    if not value:
        return value
    parts = urlsplit(_one_line(value))
    if parts.scheme not in ("imaps", "imap") or not parts.hostname or not parts.username:
        raise ValueError("must be imaps://USER@HOST[:PORT]/FOLDER (imap:// for STARTTLS)")
    if parts.password:
        raise ValueError("must not carry the password; set MAILER_BOUNCE_IMAP_PASSWORD")
    return value


def _secret(value: str) -> str:
    if value and len(value) < 16:
        raise ValueError("is too short to sign links safely (at least 16 characters)")
    return value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _between(low: float, high: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not low <= value <= high:
            raise ValueError(f"must be between {_num(low)} and {_num(high)}")
        return value

    return check


def _timezone(value: str) -> str:
    if not value:
        return value
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name") from None
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _language(value: str) -> str:
    try:
        return languages.canonical(value)
    except ValueError as e:
        raise ValueError(f"must be a language tag: {e}") from None


def _languages(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_language(v) for v in values))


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    import ipaddress

    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"holds {v[:60]!r}, which is not an IP address or CIDR") from None
    return values


def feed_url(value: str) -> str:
    """A feed's URL: absolute http(s), query allowed (many feeds have one), no credentials."""
    _one_line(value)
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("must not carry a user or password")
    return value


RULES: dict[str, Callable[[Any], Any]] = {
    "from_email": _address,
    "reply_to": _address,
    "from_name": _one_line,
    "newsletter_name": _one_line,
    "list_id": lambda v: _one_line(v) if v.isascii() else _fail("must be ASCII"),
    "base_url": _url,
    "sendgrid_api_host": _url,
    "secret_key": _secret,
    "language": _language,
    "languages": _languages,
    "trusted_proxies": _networks,
    "signup_queue_limit": _between(10, 1_000_000),
    "signup_proof_of_work": _between(0, 10_000_000),
    "stats_token": _secret,
    "smtp_port": _between(1, 65535),
    "smtp_timeout": _positive,
    "sendgrid_timeout": _positive,
    "batch_size": _between(1, 1_000_000),
    "concurrency": _between(1, 256),
    "rate_limit": _between(0, 1_000_000),
    "rate_burst": _between(1, 100_000),
    "bounce_address": _address,
    "bounce_imap_url": lambda v: _imap_url(v),
    "bounce_fetch_interval": _between(0, 86400),
    "bounce_max_bytes": _between(10_000, 100_000_000),
    "image_size_timeout": _between(0, 60),
    "timezone": _timezone,
    "max_lateness": _between(0, 366 * 86400),
    "soft_bounce_limit": _between(1, 100),
    "dkim_domain": lambda v: domain_name(v) if v else v,
    "accent_color": lambda v: (
        v if re.fullmatch(r"#[0-9A-Fa-f]{6}", v) else _fail("must be #RRGGBB")
    ),
    "logo_url": lambda v: (
        v if not v or _url(v).startswith("https://") else _fail("must be https://")
    ),
    "web_font": lambda v: (
        v if re.fullmatch(r"[A-Za-z0-9 _-]*", v) else _fail("must be a font family name")
    ),
    "web_font_url": lambda v: (  # a stylesheet URL: Google Fonts' css2 needs its query
        v if not v or _url(v, query=True).startswith("https://") else _fail("must be https://")
    ),
    "dkim_selector": lambda v: dkim_selector(v) if v else v,
}
EXAMPLES = {
    "from_email": '"news@example.com"',
    "reply_to": '"editor@example.com"',
    "from_name": '"My Newsletter"',
    "newsletter_name": '"My Newsletter"',
    "list_id": '"news.example.com"',
    "base_url": '"https://news.example.com"',
    "sendgrid_api_host": '"https://api.sendgrid.com"',
    "secret_key": '"' + "x" * 8 + '..." (mailer init writes a random one)',
    "language": '"zh-CN"',
    "languages": '["zh-CN", "en"]',
    "trusted_proxies": '["127.0.0.1"] (the proxy in front of mailer serve)',
    "signup_queue_limit": "1000",
    "signup_proof_of_work": "100000",
    "stats_token": '"a long random string" (python -c "import secrets; print(secrets.token_urlsafe(32))")',
    "smtp_port": "587",
    "smtp_timeout": "30",
    "sendgrid_timeout": "30",
    "batch_size": "1000",
    "concurrency": "4",
    "rate_limit": "14",
    "rate_burst": "1",
    "bounce_address": '"bounces@news.example.com"',
    "bounce_imap_url": '"imaps://bounces@mail.example.com/INBOX"',
    "bounce_fetch_interval": "300",
    "bounce_max_bytes": "2000000",
    "image_size_timeout": "5",
    "timezone": '"Asia/Shanghai"',
    "max_lateness": "86400",
    "soft_bounce_limit": "3",
    "dkim_domain": '"example.com"',
    "dkim_selector": '"mailer"',
    "accent_color": '"#0b63ce"',
    "logo_url": '"https://news.example.com/logo.png"',
    "web_font": '"Inter"',
    "web_font_url": '"https://fonts.googleapis.com/css2?family=Inter"',
}


def _fail(reason: str) -> Any:
    raise ValueError(reason)
