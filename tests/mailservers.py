"""Real mail servers for the SMTP loop tests: Dovecot (IMAP) with a throwaway config, and
TLS certificates made in the test (a CA and a server certificate it signs)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port


@dataclass
class Certs:
    ca: Path  # the CA certificate, to trust
    cert: Path  # the server's certificate (chain)
    key: Path


def make_certs(folder: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Certs:
    """A CA, and a server certificate for `names` (DNS names or IP addresses) it signed."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Dovecot:
    port: int
    user: str
    password: str
    certs: Certs

    @property
    def url(self) -> str:
        return f"imaps://{self.user}@127.0.0.1:{self.port}/INBOX"

    def client(self):  # type: ignore[no-untyped-def]
        import ssl

        import imapclient

        context = ssl.create_default_context(cafile=str(self.certs.ca))
        c = imapclient.IMAPClient("127.0.0.1", port=self.port, ssl=True, ssl_context=context)
        c.login(self.user, self.password)
        return c


CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
first_valid_uid = 0
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
mail_location = maildir:{root}/mail/%u
auth_mechanisms = plain
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def dovecot() -> Iterator[Dovecot]:
    """Dovecot from Debian (dovecot-imapd), on 127.0.0.1, TLS only, with a throwaway config
    and mailbox. As root its processes run as Debian's dovecot and dovenull users."""
    exe = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(exe).exists():
        if os.environ.get("MAILER_REQUIRE_DOVECOT") == "1":
            pytest.fail("no dovecot (apt-get install dovecot-imapd), and MAILER_REQUIRE_DOVECOT=1")
        pytest.skip(
            "no dovecot (apt-get install dovecot-imapd); MAILER_REQUIRE_DOVECOT=1 makes this an error"
        )
    # Its own folder under /tmp, not pytest's (mode 0700): Dovecot's users must reach it.
    root = Path(tempfile.mkdtemp(prefix="mailer-dovecot-"))
    os.chmod(root, 0o755)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    certs = make_certs(root / "tls")
    if os.geteuid() == 0:
        import pwd

        internal, login = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
        uid, gid = internal.pw_uid, internal.pw_gid
        names = ("dovecot", "dovecot", "dovenull")
        os.chown(root / "mail", uid, gid)
        del login
    else:
        import grp
        import pwd

        me = pwd.getpwuid(os.geteuid()).pw_name
        uid, gid = os.geteuid(), os.getegid()
        names = (me, grp.getgrgid(gid).gr_name, me)
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        CONFIG.format(
            root=root,
            cert=certs.cert,
            key=certs.key,
            internal=names[0],
            internal_group=names[1],
            login=names[2],
            uid=uid,
            gid=gid,
            port=port,
            password="test-secret",
        )
    )
    proc = subprocess.Popen(
        [exe, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # ready when it accepts a connection
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (root / "dovecot.log").read_text()
                        if (root / "dovecot.log").exists()
                        else ""
                    )
                    raise RuntimeError(f"dovecot did not start: {log[-2000:]}") from None
                time.sleep(0.05)
        yield Dovecot(port, "bounces", "test-secret", certs)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(root, ignore_errors=True)
