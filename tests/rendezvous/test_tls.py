"""The rendezvous service's self-signed certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from dockyard.rendezvous.tls import ensure_certificate, fingerprint


def _names(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }


def test_the_certificate_is_made_once_for_the_public_host_and_loopback(tmp_path: Path) -> None:
    cert, key = tmp_path / "secrets" / "rendezvous.crt", tmp_path / "secrets" / "rendezvous.key"
    ensure_certificate(cert, key, "dockyard.example.com")
    first = cert.read_text()
    ensure_certificate(cert, key, "dockyard.example.com")
    assert cert.read_text() == first
    assert _names(cert) == {"dockyard.example.com", "localhost", "127.0.0.1", "::1"}
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)  # the key belongs to the certificate


def test_a_new_public_host_gets_a_new_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "rendezvous.crt", tmp_path / "rendezvous.key"
    ensure_certificate(cert, key, "localhost")
    before = fingerprint(cert.read_text())
    ensure_certificate(cert, key, "paas.internal")
    assert fingerprint(cert.read_text()) != before
    assert "paas.internal" in _names(cert)


def test_the_fingerprint_is_the_sha256_of_the_der_form(tmp_path: Path) -> None:
    import hashlib

    cert, key = tmp_path / "rendezvous.crt", tmp_path / "rendezvous.key"
    ensure_certificate(cert, key, "localhost")
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert fingerprint(cert.read_text()) == hashlib.sha256(der).hexdigest()
