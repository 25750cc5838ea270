"""Apps' own TLS certificates (Heroku's SNI endpoints), and the Dockyard CA's certificate.

``POST /apps/{app}/sni-endpoints`` takes a ``certificate_chain`` and a ``private_key`` (PEM). They
are checked before anything is stored: the chain parses; the key (RSA of 2048 bits or more, or
ECDSA) matches one certificate of it, which becomes the leaf; every other certificate signs the one
before it (the chain is put in that order, and a certificate that belongs to no link is refused);
none has expired. What the leaf says is kept in the database with the chain (``cert_domains``,
``subject``, ``issuer``, dates, ``self_signed?``, ``ca_signed?`` — whether it leads to a root this
host trusts).

The private key is never stored in the database: it is written with the chain to
``<data dir>/secrets/sni-endpoints/<id>.pem``, mode 0600 in a 0700 directory, which is where the
router reads it (a database dump holds no key). A replaced certificate is written next to the old
one and renamed over it once the database has the new chain; a removed endpoint's file is deleted
after the database forgets it, and files no endpoint owns (an app deleted with its endpoints) are
removed at each change.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
import ssl
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from dockyard.control import audit
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError
from dockyard.settings import Settings
from dockyard.store import Tx
from dockyard.store.records import Account, App
from dockyard.store.routing import CertificateInfo, SniEndpoint

MAX_PEM_BYTES = 64 * 1024
MAX_CHAIN = 10
MIN_RSA_BITS = 2048
ORPHAN_AGE = 300.0
"""Seconds a key file without an endpoint is left alone (its endpoint may be being created)."""
_NAME_WORDS = (
    "akita",
    "aomori",
    "chiba",
    "fukui",
    "fukuoka",
    "gifu",
    "hakodate",
    "himeji",
    "kagoshima",
    "kobe",
    "kochi",
    "kyoto",
    "matsue",
    "mito",
    "nagano",
    "nagoya",
    "nara",
    "niigata",
    "oita",
    "okayama",
    "osaka",
    "otaru",
    "saga",
    "sapporo",
    "sendai",
    "shizuoka",
    "tokyo",
    "toyama",
    "yamagata",
    "yokohama",
)


# -- checking a certificate ---------------------------------------------------------------------


def _one_line(name: x509.Name) -> str:
    """``/C=US/O=Example/CN=shop.example.org``, as OpenSSL (and Heroku) write names."""
    return "".join(f"/{a.rfc4514_attribute_name}={a.value!s}" for a in name)


def _domains(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n).lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [
            str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return tuple(dict.fromkeys(names))


@functools.cache
def _trusted_roots() -> Store | None:
    """The host's trusted roots (its CA bundle), read once; roots that cannot be read are left
    out (some bundles still carry old roots that break today's rules)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if not candidate:
            continue
        try:
            data = Path(candidate).read_bytes()
        except OSError:
            continue
        roots = []
        end = b"-----END CERTIFICATE-----"
        for block in data.split(end)[:-1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                try:
                    roots.append(x509.load_pem_x509_certificate(block.strip() + b"\n" + end))
                except ValueError:
                    continue
        if roots:
            return Store(roots)
    return None


def _ca_signed(
    chain: list[x509.Certificate], domains: tuple[str, ...], now: datetime, roots: Store | None
) -> bool:
    if roots is None or not domains:
        return False
    name = domains[0]
    if name.startswith("*."):
        name = "www" + name[1:]
    try:
        verifier = PolicyBuilder().store(roots).time(now).build_server_verifier(x509.DNSName(name))
        verifier.verify(chain[0], chain[1:])
    except (VerificationError, ValueError):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _load_key(private_key: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    data = private_key.strip().encode()
    if len(data) > MAX_PEM_BYTES:
        raise InvalidError("private_key is too large to be a key", field="private_key")
    try:
        key = serialization.load_pem_private_key(data, None)
    except TypeError as exc:
        raise InvalidError(
            "private_key is protected by a passphrase — remove it first, e.g. "
            "openssl pkey -in server.key -out server-nopass.key",
            field="private_key",
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidError(
            "private_key is not a PEM private key (-----BEGIN PRIVATE KEY----- ...)",
            field="private_key",
        ) from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidError(
                f"private_key is an RSA key of {key.key_size} bits — use {MIN_RSA_BITS} or more",
                field="private_key",
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise InvalidError(
        "private_key must be an RSA or ECDSA key (browsers accept no other kind in certificates)",
        field="private_key",
    )


def _load_chain(certificate_chain: str) -> list[x509.Certificate]:
    data = certificate_chain.strip().encode()
    if len(data) > MAX_PEM_BYTES:
        raise InvalidError("certificate_chain is too large", field="certificate_chain")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InvalidError(
            "certificate_chain cannot be read: it must be PEM certificates "
            "(-----BEGIN CERTIFICATE----- ...), the server's first",
            field="certificate_chain",
        ) from exc
    if len(certs) > MAX_CHAIN:
        raise InvalidError(
            f"certificate_chain holds {len(certs)} certificates — at most {MAX_CHAIN}",
            field="certificate_chain",
        )
    return certs


def _ordered(certs: list[x509.Certificate], key_public: object) -> list[x509.Certificate]:
    """The chain from the certificate of ``key_public`` up, each signed by the next."""
    leaves = [c for c in certs if c.public_key() == key_public]
    if not leaves:
        raise InvalidError(
            "private_key does not match any certificate in certificate_chain — give the key "
            "of the server certificate",
            field="private_key",
        )
    chain = [leaves[0]]
    rest = [c for c in certs if c is not leaves[0]]
    while rest:
        current = chain[-1]
        issuers = [c for c in rest if c.subject == current.issuer]
        if not issuers or _self_signed(current):
            break
        issuer = issuers[0]
        try:
            current.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidError(
                f"certificate_chain: {_one_line(issuer.subject)} did not sign "
                f"{_one_line(current.subject)}",
                field="certificate_chain",
            ) from exc
        chain.append(issuer)
        rest.remove(issuer)
    if rest:
        raise InvalidError(
            f"certificate_chain: {_one_line(rest[0].subject)} is not part of the chain of "
            f"{_one_line(chain[0].subject)} — give only the server certificate and its "
            "intermediates",
            field="certificate_chain",
        )
    return chain


def check_certificate(
    certificate_chain: str, private_key: str, now: datetime, *, trusted: Store | None = None
) -> tuple[CertificateInfo, bytes]:
    """What the chain says, and the key and ordered chain as one PEM (what the router loads);
    ``InvalidError`` naming what is wrong. ``ca_signed?`` says whether the chain leads to a root
    of ``trusted`` (default: the roots this host trusts)."""
    certs = _load_chain(certificate_chain)
    key = _load_key(private_key)
    chain = _ordered(certs, key.public_key())
    for cert in chain:
        if cert.not_valid_after_utc <= now:
            raise InvalidError(
                f"certificate_chain: {_one_line(cert.subject)} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d} — renew it",
                field="certificate_chain",
            )
    leaf = chain[0]
    domains = _domains(leaf)
    if not domains:
        raise InvalidError(
            "certificate_chain: the certificate names no domain (no DNS names, no common name)",
            field="certificate_chain",
        )
    pem_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    info = CertificateInfo(
        certificate_chain=pem_chain.decode("ascii"),
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        cert_domains=domains,
        subject=_one_line(leaf.subject),
        issuer=_one_line(leaf.issuer),
        starts_at=leaf.not_valid_before_utc,
        expires_at=leaf.not_valid_after_utc,
        self_signed=_self_signed(leaf),
        ca_signed=_ca_signed(chain, domains, now, trusted or _trusted_roots()),
    )
    return info, key_pem + pem_chain


# -- key files --------------------------------------------------------------------------------


def key_file(settings: Settings, endpoint_id: str) -> Path:
    return settings.sni_endpoints_dir / f"{endpoint_id}.pem"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _staged(path: Path, data: bytes) -> Iterator[None]:
    """Write ``data`` next to ``path``; rename it over ``path`` when the block succeeds, else
    delete it."""
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    _write_private(staged, data)
    try:
        yield
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, path)


def prune_key_files(platform: Platform) -> list[str]:
    """Delete key files no endpoint owns any more (older than ``ORPHAN_AGE``); their ids."""
    directory = platform.settings.sni_endpoints_dir
    try:
        files = list(directory.iterdir())
    except FileNotFoundError:
        return []
    with platform.store.read() as tx:
        known = tx.sni_endpoint_ids()
    now = time.time()
    removed = []
    for path in files:
        endpoint_id = path.name.lstrip(".").split(".")[0]
        if endpoint_id in known and not path.name.endswith(".new"):
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime >= ORPHAN_AGE:
                path.unlink()
                removed.append(endpoint_id)
    return removed


# -- use cases ------------------------------------------------------------------------------


def _new_name(tx: Tx) -> str:
    for _ in range(100):
        name = f"{secrets.choice(_NAME_WORDS)}-{secrets.randbelow(90000) + 10000}"
        if not tx.sni_endpoint_name_taken(name):
            return name
    raise InvalidError("cannot find a free SNI endpoint name; try again")  # pragma: no cover


def _covers(pattern: str, hostname: str) -> bool:
    """Whether a certificate name covers a domain (a wildcard covers one label)."""
    if pattern == hostname:
        return True
    if not pattern.startswith("*.") or hostname.startswith("*."):
        return False
    dot = hostname.find(".")
    return dot > 0 and hostname[dot:] == pattern[1:]


def covered_domains(tx: Tx, app_id: str, endpoint: SniEndpoint) -> tuple[str, ...]:
    """Ids of the app's custom domains the endpoint's certificate covers (what it serves)."""
    names = endpoint.certificate.cert_domains
    return tuple(
        d.id
        for d in tx.list_domains(app_id)
        if d.kind == "custom" and any(_covers(n, d.hostname) for n in names)
    )


Served = tuple[SniEndpoint, tuple[str, ...]]
"""An endpoint and the ids of the app's domains it serves."""


def list_endpoints(platform: Platform, account: Account, app_ref: str) -> tuple[App, list[Served]]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, [(e, covered_domains(tx, app.id, e)) for e in tx.list_sni_endpoints(app.id)]


def get_endpoint(
    platform: Platform, account: Account, app_ref: str, endpoint_ref: str
) -> tuple[App, Served]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        endpoint = tx.get_sni_endpoint(app.id, endpoint_ref)
        return app, (endpoint, covered_domains(tx, app.id, endpoint))


def add_endpoint(
    platform: Platform,
    account: Account,
    app_ref: str,
    certificate_chain: str,
    private_key: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Served]:
    info, pem = check_certificate(certificate_chain, private_key, platform.clock.now())
    endpoint_id = str(uuid.uuid4())
    path = key_file(platform.settings, endpoint_id)
    with _staged(path, pem), platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        endpoint = tx.add_sni_endpoint(endpoint_id, app.id, _new_name(tx), info)
        domains = covered_domains(tx, app.id, endpoint)
        audit.record_app_event(
            platform,
            "certificate.add",
            account,
            context,
            app,
            target=("sni_endpoint", endpoint.id, endpoint.name),
            details={"cert_domains": ", ".join(info.cert_domains), "fingerprint": info.fingerprint},
        )
    platform.log(
        app.id,
        "heroku",
        "api",
        f"Add SNI endpoint {endpoint.name} ({', '.join(info.cert_domains)}) by {account.email}",
    )
    prune_key_files(platform)
    return app, (endpoint, domains)


def update_endpoint(
    platform: Platform,
    account: Account,
    app_ref: str,
    endpoint_ref: str,
    certificate_chain: str,
    private_key: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Served]:
    info, pem = check_certificate(certificate_chain, private_key, platform.clock.now())
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        found = tx.get_sni_endpoint(app.id, endpoint_ref)
        with _staged(key_file(platform.settings, found.id), pem):
            endpoint = tx.update_sni_endpoint(found.id, info)
            domains = covered_domains(tx, app.id, endpoint)
            audit.record_app_event(
                platform,
                "certificate.update",
                account,
                context,
                app,
                target=("sni_endpoint", endpoint.id, endpoint.name),
                details={
                    "cert_domains": ", ".join(info.cert_domains),
                    "fingerprint": info.fingerprint,
                },
            )
    platform.log(
        app.id,
        "heroku",
        "api",
        f"Update SNI endpoint {endpoint.name} ({', '.join(info.cert_domains)}) by {account.email}",
    )
    return app, (endpoint, domains)


def remove_endpoint(
    platform: Platform,
    account: Account,
    app_ref: str,
    endpoint_ref: str,
    *,
    context: RequestContext | None = None,
) -> tuple[App, Served]:
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "manage")
        endpoint = tx.get_sni_endpoint(app.id, endpoint_ref)
        domains = covered_domains(tx, app.id, endpoint)
        tx.delete_sni_endpoint(endpoint.id)
        audit.record_app_event(
            platform,
            "certificate.remove",
            account,
            context,
            app,
            target=("sni_endpoint", endpoint.id, endpoint.name),
        )
    key_file(platform.settings, endpoint.id).unlink(missing_ok=True)
    platform.log(app.id, "heroku", "api", f"Remove SNI endpoint {endpoint.name} by {account.email}")
    prune_key_files(platform)
    return app, (endpoint, domains)


def platform_ca_certificate(settings: Settings) -> bytes | None:
    """The Dockyard CA's certificate (PEM) that clients install to trust apps' HTTPS; None when
    the operator brought their own certificate or the CA is not made yet."""
    if settings.router.tls_cert_file:
        return None
    try:
        return settings.tls_ca_cert_file.read_bytes()
    except FileNotFoundError:
        return None
