"""DKIM signatures (RFC 6376) for the messages mailer hands over itself: SMTP and outbox.

SendGrid signs with the domain authenticated there. The key is read and checked once, at
start; a recipient then costs one body hash and one RSA signature (dkimpy). The signed
headers include the one-click ones: Gmail and Yahoo require List-Unsubscribe and
List-Unsubscribe-Post to be covered by the signature. The headers a reader acts on are
over-signed (RFC 6376 §8.15): named once more in h= than they occur, so a second copy
prepended after signing (a forged From, a List-Unsubscribe pointing elsewhere) breaks
the signature instead of being shown.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from mailer.config import Settings
from mailer.errors import ConfigError, InputError
from mailer.setting_rules import dkim_selector, domain_name

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",  # Gmail counts it only when the signature covers it
    b"mime-version",
    b"content-type",
)
OVERSIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)


class DkimSigner:
    def __init__(self, domain: str, selector: str, private_key_pem: bytes) -> None:
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.key = private_key_pem
        _use_openssl_for_rsa()

    def sign(self, message: bytes) -> bytes:
        import dkim

        header = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.key,
            include_headers=[*SIGNED_HEADERS, *OVERSIGNED],
            # relaxed headers survive refolding; our bodies are QP or base64 with CRLF and
            # no trailing spaces, so simple body canonicalization holds and costs far less.
            canonicalize=(b"relaxed", b"simple"),
        )
        return bytes(header) + message


def _use_openssl_for_rsa() -> None:
    """dkimpy computes RSA signatures with Python's pow (about 10 ms each here); hand that
    one step to OpenSSL through `cryptography` (well under 1 ms). PKCS#1 v1.5 signatures
    are deterministic, so the bytes are the same (a test compares them); everything else
    (canonicalization, header selection, hashing) stays dkimpy's."""
    import dkim

    if getattr(dkim.RSASSA_PKCS1_v1_5_sign, "__name__", "") != _openssl_rsa_sign.__name__:
        dkim.RSASSA_PKCS1_v1_5_sign = _openssl_rsa_sign


_RSA_KEYS: dict[int, Any] = {}  # modulus -> cryptography key, parsed once per process


def _openssl_rsa_sign(hash: Any, private_key: dict[str, int]) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

    key = _RSA_KEYS.get(private_key["modulus"])
    if key is None:
        public = rsa.RSAPublicNumbers(private_key["publicExponent"], private_key["modulus"])
        key = rsa.RSAPrivateNumbers(
            p=private_key["prime1"],
            q=private_key["prime2"],
            d=private_key["privateExponent"],
            dmp1=private_key["exponent1"],
            dmq1=private_key["exponent2"],
            iqmp=private_key["coefficient"],
            public_numbers=public,
        ).private_key()
        _RSA_KEYS[private_key["modulus"]] = key
    algorithm = hashes.SHA256() if hash.name.lower() == "sha256" else hashes.SHA1()
    signed: bytes = key.sign(hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))
    return signed


def signer_from(settings: Settings) -> DkimSigner | None:
    """The signer the settings ask for, or None; a missing or unusable key is one line."""
    keys = ("dkim_domain", "dkim_selector", "dkim_private_key")
    given = [k for k in keys if getattr(settings, k)]
    if not given:
        return None
    if len(given) < 3:
        missing = next(k for k in keys if not getattr(settings, k))
        raise ConfigError(
            f"DKIM needs dkim_domain, dkim_selector and dkim_private_key; set {missing}"
        )
    pem = _read_key(settings)
    _check_key(pem)
    return DkimSigner(settings.dkim_domain, settings.dkim_selector, pem)


def _read_key(settings: Settings) -> bytes:
    value = settings.dkim_private_key
    if value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii", "replace")
    path = settings.path(value)
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"dkim_private_key {path}: cannot read it ({e.strerror}); "
            "make one with 'mailer dkim keygen'"
        ) from None


def _check_key(pem: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"dkim_private_key is not an unencrypted PEM private key ({e}); "
            "make one with 'mailer dkim keygen'"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        # dkimpy signs Ed25519 only from a bare 32-byte key, and receivers that check only
        # RSA would see no signature at all: one kind, checked before anyone is mailed.
        kind = type(key).__name__.removesuffix("PrivateKey").lstrip("_")
        raise ConfigError(
            f"dkim_private_key is not an RSA key ({kind}); mailer signs with RSA: "
            "make one with 'mailer dkim keygen'"
        )
    if key.key_size < 1024:
        raise ConfigError("dkim_private_key: RSA keys under 1024 bits are refused by receivers")


def keygen(path: Path, selector: str, domain: str, bits: int = 2048) -> str:
    """Write a new RSA private key (mode 0600, never over an existing file) and return
    the DNS TXT record to publish."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    selector, domain = (
        _named(dkim_selector, selector, "--selector"),
        _named(domain_name, domain, "--domain"),
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    # A DNS TXT string holds at most 255 bytes; longer values are several strings in a row.
    strings = " ".join(f'"{value[i : i + 250]}"' for i in range(0, len(value), 250))
    return f"{selector}._domainkey.{domain}. IN TXT ( {strings} )"


def _named(rule: Any, value: str, option: str) -> str:
    try:
        return str(rule(value))
    except ValueError as e:
        raise InputError(f"{option} {value[:60]!r} {e}") from None


def txt_record_value(record: str) -> bytes:
    """The TXT value a DNS lookup returns for a record line: its strings joined."""
    return "".join(record.split('"')[1::2]).encode()
