"""https for the chat server: browsers give the microphone and WebCodecs only to secure pages
(https, or http on localhost), so a model on a GPU server reached from a laptop needs TLS.

``--ssl DIR`` reads ``DIR/cert.pem`` and ``DIR/key.pem`` as Kyutai's ``moshi.server --ssl`` does.
``--ssl self-signed`` makes a certificate for the given host names (plus localhost and this
machine's names) with the ``cryptography`` package, and caches it in the user's cache folder
(``$XDG_CACHE_HOME/jmoshi-augment/tls/<names>/``) so the browser's one-time exception survives
restarts. It is remade when it expires within :data:`RENEW_BEFORE_DAYS` or the names change.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from jmoshi_augment.errors import JmoshiError

SELF_SIGNED = "self-signed"
VALID_DAYS = 397  # the longest validity browsers accept for a server certificate (CA/B Forum, 2020)
RENEW_BEFORE_DAYS = 7
UNBOUND = {"", "0.0.0.0", "::"}  # bind-all addresses are not names a browser can open


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    names: tuple[str, ...]  # the names it is valid for (empty: read from a user's folder, unknown)
    fingerprint: str  # SHA-256 of the DER certificate, as browsers show it


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jmoshi-augment" / "tls"


def default_names(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names a self-signed certificate covers: the given ones, the bound host, this machine's
    names, and loopback; deduplicated, in a stable order (the cache key)."""
    names = [*extra, host, socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1", "::1"]
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name not in UNBOUND and name not in out:
            out.append(name)
    return tuple(out)


def resolve(ssl_arg: str, host: str, names: tuple[str, ...] = ()) -> Certificate:
    """The certificate for ``--ssl DIR`` or ``--ssl self-signed`` (made or reused from the cache)."""
    if ssl_arg == SELF_SIGNED:
        return self_signed(default_names(host, names))
    folder = Path(ssl_arg)
    cert, key = folder / "cert.pem", folder / "key.pem"
    for path in (cert, key):
        if not path.is_file():
            raise JmoshiError(f"--ssl {folder}: {path.name} not found (expected cert.pem and key.pem, as "
                              f"moshi.server --ssl; or use --ssl {SELF_SIGNED})", path=path)
    return Certificate(cert, key, (), _fingerprint(cert.read_bytes()))


def context(certificate: Certificate) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(certfile=str(certificate.cert), keyfile=str(certificate.key))
    except (ssl.SSLError, ValueError) as e:
        raise JmoshiError(f"cannot use {certificate.cert} with {certificate.key}: {e}", path=certificate.cert) from None
    return ctx


def self_signed(names: tuple[str, ...], folder: Path | None = None) -> Certificate:
    from cryptography import x509

    key_tag = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    folder = folder or cache_dir() / key_tag
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
        if remaining > datetime.timedelta(days=RENEW_BEFORE_DAYS):
            return Certificate(cert_path, key_path, names, _fingerprint(cert_path.read_bytes()))
    cert_pem, key_pem = make_self_signed(names)
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(key_path, key_pem)
    _write_private(cert_path, cert_pem)
    return Certificate(cert_path, key_path, names, _fingerprint(cert_pem))


def make_self_signed(names: tuple[str, ...], days: int = VALID_DAYS) -> tuple[bytes, bytes]:
    """A P-256 key and a certificate for ``names`` (DNS names and IP addresses); PEM bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jmoshi-augment chat (self-signed)")])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    """Write via a temporary name readable by the user only, then rename (no half-written key)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fingerprint(cert_pem: bytes) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
