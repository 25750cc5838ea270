"""TLS termination: the Dockyard CA, the platform's wildcard certificate, SNI, and HTTPS policy.

At install (``dockyard up``'s first start, or the router's, whichever comes first) Dockyard creates
its own certificate authority (an ECDSA P-256 key kept in ``<data dir>/secrets``, mode 0600, valid
ten years, name-constrained to the platform domain so that trusting it vouches for nothing else) and
issues from it a certificate for ``*.<platform domain>`` and the bare domain. The wildcard is issued
again when the domain changes or less than ``RENEW_BEFORE`` of its validity is left; the router
checks twice a day. An operator may give a certificate of their own instead (``router.tls_cert_file``
and ``router.tls_key_file``): then no CA is made.

Per-app certificates (the API's ``/apps/{app}/sni-endpoints``) reach the router as entries of the
route table (id, fingerprint, the names they cover); their chain and key are read from
``<data dir>/secrets/sni-endpoints/<id>.pem`` (mode 0600, written by the control plane). The SNI
name picks the context: a custom domain of an app with a certificate that covers it gets that
certificate; everything else (the platform domain, unknown names, no SNI) the default certificate.

Every context speaks TLS 1.2 and 1.3 only, with forward-secret AEAD ciphers (Mozilla's
"intermediate" list without the DHE suites), no compression, no renegotiation, and ALPN
``http/1.1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.domain.dataplane import AppCertificate, Route, RouteTable
from dockyard.router.errors import RouterError
from dockyard.settings import Settings

logger = logging.getLogger("dockyard.router")

CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
"""TLS 1.2 cipher suites (TLS 1.3 has only AEAD suites, all allowed)."""

CA_VALIDITY = timedelta(days=3650)
CERT_VALIDITY = timedelta(days=397)
"""What browsers accept from public CAs; Safari caps every server certificate at 825 days."""
RENEW_BEFORE = timedelta(days=30)
RENEW_CHECK_INTERVAL = 12 * 3600.0
"""Seconds between two checks of the wildcard's validity by a running router."""


def server_context() -> ssl.SSLContext:
    """A server context with Dockyard's protocol settings and no certificate yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    return context


def load_context(certfile: Path, keyfile: Path | None = None) -> ssl.SSLContext:
    """A server context serving the chain in ``certfile`` (and the key in it, or in ``keyfile``)."""
    context = server_context()
    context.load_cert_chain(certfile, keyfile)
    return context


# -- the Dockyard CA and the platform certificate ----------------------------------------------------


@dataclass(frozen=True)
class PlatformCertificate:
    """Where the default certificate is, and what ``ensure_platform_certificate`` did."""

    certfile: Path
    keyfile: Path | None
    """None when the key is in ``certfile`` (the wildcard Dockyard issues)."""
    ca_file: Path | None
    """The Dockyard CA's certificate; None with an operator's certificate."""
    created_ca: bool = False
    issued: bool = False
    """A new wildcard certificate was issued (first start, new domain, or renewal)."""

    @property
    def ca_fingerprint(self) -> str:
        """``AB:CD:...``, SHA-256 of the CA certificate (to compare with what a browser shows)."""
        if self.ca_file is None:
            return ""
        der = ssl.PEM_cert_to_DER_cert(self.ca_file.read_text(encoding="ascii"))
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def ensure_platform_certificate(
    settings: Settings, *, now: datetime | None = None
) -> PlatformCertificate:
    """The default certificate: the operator's when set, else the wildcard of the Dockyard CA,
    creating the CA and issuing the wildcard when they are missing, outdated or for another domain.
    Safe to call from several processes at once (a lock file serialises them)."""
    router = settings.router
    if router.tls_cert_file:
        key = Path(router.tls_key_file) if router.tls_key_file else None
        return PlatformCertificate(Path(router.tls_cert_file), key, None)
    now = now or datetime.now(UTC)
    domain = settings.domain.lower().rstrip(".")
    ca_cert_path, ca_key_path = settings.tls_ca_cert_file, settings.tls_ca_key_file
    cert_path = settings.tls_platform_cert_file
    with _locked(settings.secrets_dir / ".tls.lock"):
        created_ca = False
        ca = _load_ca(ca_cert_path, ca_key_path)
        if ca is None or not _ca_usable(ca[0], domain, now):
            ca = _create_ca(domain, now)
            _write(ca_key_path, _key_pem(ca[1]), 0o600)
            _write(ca_cert_path, ca[0].public_bytes(serialization.Encoding.PEM), 0o644)
            created_ca = True
        issued = False
        if created_ca or not _leaf_current(cert_path, ca[0], domain, now):
            leaf_key = ec.generate_private_key(ec.SECP256R1())
            leaf = _issue(ca, leaf_key.public_key(), [f"*.{domain}", domain], now)
            pem = _key_pem(leaf_key) + leaf.public_bytes(serialization.Encoding.PEM)
            _write(cert_path, pem, 0o600)
            issued = True
    return PlatformCertificate(cert_path, None, ca_cert_path, created_ca, issued)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


CaPair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _load_ca(cert_path: Path, key_path: Path) -> CaPair | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _permitted(cert: x509.Certificate) -> list[str] | None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    return [str(name.value) for name in constraints.permitted_subtrees or ()]


def _ca_usable(cert: x509.Certificate, domain: str, now: datetime) -> bool:
    """Whether the CA may issue for ``domain`` and outlives a new certificate."""
    permitted = _permitted(cert)
    if permitted is not None and not any(
        domain == p or domain.endswith("." + p) for p in permitted
    ):
        return False
    return cert.not_valid_after_utc > now + CERT_VALIDITY


def _create_ca(domain: str, now: datetime) -> CaPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Dockyard CA for {domain}"[:64]),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=None),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: CaPair, public: ec.EllipticCurvePublicKey, names: list[str], now: datetime
) -> x509.Certificate:
    ca_cert, ca_key = ca
    not_after = min(now + CERT_VALIDITY, ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _leaf_current(path: Path, ca_cert: x509.Certificate, domain: str, now: datetime) -> bool:
    """Whether the wildcard on disk was issued by this CA for ``domain`` and stays valid a while."""
    try:
        data = path.read_bytes()
        cert = x509.load_pem_x509_certificate(data)
        serialization.load_pem_private_key(data, None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    return {f"*.{domain}", domain} <= names and cert.not_valid_after_utc - RENEW_BEFORE > now


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


CA_URL_PATH = "/.well-known/dockyard/ca.crt"
"""Where the API serves the Dockyard CA's certificate."""


def install_notes(settings: Settings) -> list[str]:
    """What ``dockyard up`` says about HTTPS, making the Dockyard CA and the platform's certificate
    when they are missing: on the first start, how to trust the CA."""
    router = settings.router
    if not router.tls:
        return ["  HTTPS          : off (router.tls = false)"]
    port = "" if router.tls_port == 443 else f":{router.tls_port}"
    apps = f"  HTTPS          : https://<app>.{settings.domain}{port}/"
    try:
        made = ensure_platform_certificate(settings)
    except (OSError, ValueError) as exc:
        return [apps, f"  !!! HTTPS is off: the platform's certificate cannot be made ({exc})"]
    if made.ca_file is None:
        return [f"{apps} (certificate: {made.certfile})"]
    ca = str(made.ca_file)
    lines = [apps, f"  Dockyard CA    : {ca}", f"                   SHA-256 {made.ca_fingerprint}"]
    if made.created_ca:
        lines += [
            "  The Dockyard CA was created now. Trust it once on each machine that opens your apps,",
            "  so browsers and tools accept their HTTPS (it vouches for nothing outside "
            f"{settings.domain}):",
            f"    Debian, Ubuntu : sudo cp {ca} /usr/local/share/ca-certificates/dockyard.crt"
            " && sudo update-ca-certificates",
            "    macOS          : sudo security add-trusted-cert -d -r trustRoot -k "
            f"/Library/Keychains/System.keychain {ca}",
            "    Windows        : certutil -addstore -f ROOT dockyard-ca.crt",
            "    Firefox        : Settings, Privacy & Security, Certificates, View Certificates,"
            " Authorities, Import",
            f"    curl, Node, the Heroku CLI : --cacert {ca}, NODE_EXTRA_CA_CERTS={ca}",
            f"  On other machines, download it from {settings.api_url}{CA_URL_PATH} and check",
            "  that its SHA-256 fingerprint is the one above before trusting it.",
        ]
    return lines


def platform_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTPS listener's context with the default certificate (made when missing); None, with
    the reason in the log, when it cannot be had (the router then serves plain HTTP only)."""
    try:
        platform = ensure_platform_certificate(settings)
        return load_context(platform.certfile, platform.keyfile)
    except (OSError, ssl.SSLError, ValueError) as exc:
        logger.error(
            "HTTPS is off: the router's default certificate cannot be loaded (%s) — check "
            "router.tls_cert_file and router.tls_key_file, or %s",
            exc,
            settings.secrets_dir,
        )
        return None


# -- SNI ---------------------------------------------------------------------------------------------


def covers(pattern: str, hostname: str) -> bool:
    """Whether a certificate name (``shop.example.org``, ``*.example.org``) covers ``hostname``; a
    wildcard covers one label, and a wildcard hostname only when the names are equal."""
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern == hostname:
        return True
    if not pattern.startswith("*.") or hostname.startswith("*."):
        return False
    dot = hostname.find(".")
    return dot > 0 and hostname[dot:] == pattern[1:]


class Certificates:
    """The default context and the per-app contexts, chosen by SNI name.

    ``context`` is what the TLS listener uses: its ``sni_callback`` switches a handshake to the
    context of the app whose custom domain was asked for. ``update`` takes each new route table."""

    def __init__(self, default: ssl.SSLContext, directory: Path, domain: str) -> None:
        self.context = default
        self.directory = directory
        self.domain = domain.lower().rstrip(".")
        self.by_host: dict[str, ssl.SSLContext] = {}
        self._loaded: dict[tuple[str, str], ssl.SSLContext] = {}
        self._failed: set[tuple[str, str]] = set()
        default.sni_callback = self._select

    @classmethod
    def from_settings(cls, settings: Settings) -> Certificates:
        platform = ensure_platform_certificate(settings)
        default = load_context(platform.certfile, platform.keyfile)
        return cls(default, settings.sni_endpoints_dir, settings.domain)

    def reload_default(self, certfile: Path, keyfile: Path | None = None) -> None:
        """Serve a new default certificate (after a renewal) to the handshakes that follow."""
        self.context.load_cert_chain(certfile, keyfile)

    def update(self, table: RouteTable) -> None:
        by_host: dict[str, ssl.SSLContext] = {}
        loaded: dict[tuple[str, str], ssl.SSLContext] = {}
        for route in table.routes:
            for hostname, cert in self._assignments(route):
                key = (cert.id, cert.fingerprint)
                context = loaded.get(key) or self._loaded.get(key) or self._load(cert)
                if context is not None:
                    loaded[key] = context
                    by_host[hostname] = context
        self.by_host = by_host
        self._loaded = loaded

    def _assignments(self, route: Route) -> Iterator[tuple[str, AppCertificate]]:
        """Each custom hostname of the route with the certificate that serves it: of those that
        cover it, the one that expires last."""
        if not route.certificates:
            return
        for hostname in route.hostnames:
            host = hostname.lower().rstrip(".")
            if host == self.domain or host.endswith("." + self.domain):
                continue  # the platform's names keep the platform's certificate
            fitting = [c for c in route.certificates if any(covers(d, host) for d in c.domains)]
            if fitting:
                yield host, max(fitting, key=lambda c: (c.expires_at, c.id))

    def _load(self, cert: AppCertificate) -> ssl.SSLContext | None:
        path = self.directory / f"{cert.id}.pem"
        try:
            return load_context(path)
        except (OSError, ssl.SSLError, ValueError) as exc:
            key = (cert.id, cert.fingerprint)
            if key not in self._failed:
                self._failed.add(key)
                logger.warning(
                    "cannot load the certificate of SNI endpoint %s from %s (%s); its domains "
                    "get the default certificate",
                    cert.id,
                    path,
                    exc,
                )
            return None

    def lookup(self, server_name: str) -> ssl.SSLContext | None:
        name = server_name.lower().rstrip(".")
        context = self.by_host.get(name)
        if context is None:
            dot = name.find(".")
            if dot > 0:
                context = self.by_host.get("*" + name[dot:])
        return context

    def _select(
        self, sslobj: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext
    ) -> None:
        if server_name:
            context = self.lookup(server_name)
            if context is not None:
                sslobj.context = context


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


async def run_renewal(
    settings: Settings, certificates: Certificates, *, interval: float = RENEW_CHECK_INTERVAL
) -> None:
    """Twice a day: issue the wildcard again when it nears its end, and serve the certificate on
    disk when it changed (another worker, or another router on this host, may have renewed it)."""
    served = _stamp(settings.tls_platform_cert_file)
    while True:
        await asyncio.sleep(interval)
        try:
            platform = await asyncio.to_thread(ensure_platform_certificate, settings)
            stamp = _stamp(platform.certfile)
            if stamp != served:
                certificates.reload_default(platform.certfile, platform.keyfile)
                served = stamp
                logger.info("serving the renewed platform certificate %s", platform.certfile)
        except (OSError, ssl.SSLError, ValueError) as exc:
            logger.warning("cannot renew the platform's TLS certificate: %s", exc)


# -- HTTPS policy per app ----------------------------------------------------------------------------

ACME_CHALLENGE = b"/.well-known/acme-challenge/"
"""Never redirected: certificate authorities check domains over plain HTTP."""


@dataclass(frozen=True, slots=True)
class Redirect(RouterError):
    """The router's answer that sends a plain-HTTP request to HTTPS (logged ``at=info``)."""

    location: bytes = b""

    def response(
        self, *, keep_alive: bool, http10: bool = False, body: bytes | None = None
    ) -> bytes:
        connection = (b"keep-alive" if http10 else b"") if keep_alive else b"close"
        head = [
            b"HTTP/1.1 %d %b\r\n" % (self.status, self.title.encode("ascii")),
            b"Location: %b\r\n" % self.location,
            b"Content-Length: 0\r\n",
            b"Via: 1.1 dockyard\r\n",
        ]
        if connection:
            head.append(b"Connection: %b\r\n" % connection)
        head.append(b"\r\n")
        return b"".join(head)


def redirect(route: Route, host: bytes, path: bytes, https_port: int) -> Redirect | None:
    """The redirect to HTTPS the app asked for (301 or 308) of a plain-HTTP request; None when it
    wants none, or for ACME's HTTP challenges."""
    status = route.https_redirect
    if status not in (301, 308) or path.startswith(ACME_CHALLENGE):
        return None
    name = host
    colon = name.rfind(b":")
    if colon >= 0 and name.find(b"]", colon) < 0:
        name = name[:colon]
    if https_port != 443:
        name += b":%d" % https_port
    if not path.startswith(b"/"):
        path = b"/"  # "*" (OPTIONS) or an absolute form: the site's root
    title = "Moved Permanently" if status == 301 else "Permanent Redirect"
    return Redirect(
        code="",
        status=status,
        desc=title,
        level="info",
        title=title,
        message="",
        log_prefix=b"at=info",
        app_page=False,
        location=b"https://" + name + path,
    )


def hsts(route: Route) -> bytes:
    """The ``Strict-Transport-Security`` header line for the app's HTTPS responses, or b""."""
    if not route.hsts:
        return b""
    return b"Strict-Transport-Security: " + route.hsts.encode("latin-1") + b"\r\n"
