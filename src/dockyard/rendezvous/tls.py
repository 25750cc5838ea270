"""The rendezvous service's self-signed TLS certificate, kept under ``<data dir>/secrets``.

Created on first start (an ECDSA P-256 key, valid ten years) for the public host name plus
``localhost``, ``127.0.0.1`` and ``::1``, and created again when the public host name changes or it
is about to expire. Clients check it by its SHA-256 fingerprint, which the API puts into every
``attach_url`` (``?sha256=``); the Heroku CLI instead trusts it through ``NODE_EXTRA_CA_CERTS``.
An operator may replace both files with a certificate of their own CA.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = timedelta(days=3650)
RENEW_BEFORE = timedelta(days=30)
ALWAYS = ("localhost", "127.0.0.1", "::1")


def _names(public_host: str) -> list[str]:
    return list(dict.fromkeys([public_host, *ALWAYS]))


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _current(cert_path: Path, names: list[str], now: datetime) -> bool:
    """Whether the certificate on disk covers ``names`` and stays valid for a while."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    covered = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    return set(names) <= covered and cert.not_valid_after_utc - RENEW_BEFORE > now


def ensure_certificate(cert_path: Path, key_path: Path, public_host: str) -> None:
    """Create the self-signed certificate and its key (mode 0600) unless a current one exists."""
    names = _names(public_host)
    now = datetime.now(UTC)
    if key_path.exists() and _current(cert_path, names, now):
        return
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"Dockyard rendezvous {names[0]}")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def fingerprint(cert_pem: str) -> str:
    """Hex SHA-256 of the certificate's DER form (what clients pin)."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest()


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
