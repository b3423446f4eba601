"""Email addresses: validated by email-validator (no DNS), normalized one way everywhere.

Normal form: the local part as written, the domain lower-cased and IDNA-encoded. Two
addresses are the same subscriber when their normal forms match case-insensitively.
"""

from __future__ import annotations

import hashlib
import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

# The everyday ASCII shape, checked without email-validator's full parse (20 µs an
# address, which dominates a million-row import). Anything else takes the full path;
# tests check that both paths agree.
_PLAIN = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})\Z"
)
_SPECIAL = frozenset(SPECIAL_USE_DOMAIN_NAMES)


class InvalidAddress(ValueError):
    pass


def normalize(raw: str) -> str:
    """The normal form of an address, or InvalidAddress with a reason a person can act on."""
    candidate = raw.strip()
    m = _PLAIN.match(candidate)
    if m is not None and len(candidate) <= 254:
        at = m.start(1)  # just after the @
        domain = m.group(1).lower()
        # Every special-use name is a single label, so the last label is all to check.
        # "--" may be punycode or a reserved "ab--" label: email-validator decides.
        if at <= 65 and "--" not in domain and domain[domain.rfind(".") + 1 :] not in _SPECIAL:
            return candidate[:at] + domain
    try:
        v = validate_email(
            candidate,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_display_name=False,
        )
    except EmailNotValidError as e:
        raise InvalidAddress(str(e)) from None
    return f"{v.local_part}@{v.ascii_domain}"


def key(normalized: str) -> str:
    """What makes two addresses one subscriber."""
    return normalized.lower()


def erasure_hash(normalized: str) -> str:
    """A one-way fingerprint kept after erasure, so a later import can recognise the person."""
    return hashlib.sha256(b"mailer.erased\0" + key(normalized).encode("utf-8")).hexdigest()


def mask(address: str) -> str:
    """a•••@example.com: enough for a person to recognise their address, not to harvest it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def readable(normalized: str) -> str:
    """An address as a person reads it: an internationalized domain in its own letters,
    with the ASCII form mail uses beside it (ann@bücher.example (ann@xn--bcher-kva.example))."""
    local, _, domain = normalized.partition("@")
    if "xn--" not in domain:
        return normalized
    try:
        shown = domain.encode("ascii").decode("idna")
    except UnicodeError:
        return normalized
    return f"{local}@{shown} ({normalized})"
