"""TLS termination: the Dockyard CA and its wildcard, protocol versions and ciphers, SNI, the
forwarded headers of HTTPS requests, and the per-app redirect to HTTPS and HSTS.

Clients are Python's ``ssl`` module against the real router; certificates are made with
``cryptography`` the way an operator's CA would make them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import socket
import ssl
import stat
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dockyard.domain.dataplane import AppCertificate, RouteTable
from dockyard.logs.store import FileLogStore
from dockyard.router import tls
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer, listeners
from dockyard.settings import RouterSettings, Settings

from .support import DOMAIN, Backend, Harness, RawClient, build_request, read_response, route, table

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"


def edge_settings(tmp: Path, **router: Any) -> Settings:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "refresh_interval": 3600}
    values.update(router)
    return Settings(data_dir=tmp, domain=DOMAIN, router=RouterSettings(**values))


@asynccontextmanager
async def running(settings: Settings, initial: RouteTable) -> AsyncIterator[Harness]:
    source = FakeRouteSource(initial)
    logs = FileLogStore(settings.logs_dir)
    router = RouterServer(
        settings, source, options=ProxyOptions(sweep_interval=0.05), poll=False, log_store=logs
    )
    await router.start()
    try:
        await router.refresh()
        yield Harness(router, source, settings, logs, settings.data_dir)
    finally:
        await router.stop(grace=2.0)


def trusting(settings: Settings, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.tls_ca_cert_file))
    for name, version in versions.items():
        setattr(context, name, version)
    return context


async def https_client(
    port: int, context: ssl.SSLContext, server_name: str | None = HOST
) -> RawClient:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_name
    )
    return RawClient(reader, writer)


def peer_fingerprint(client: RawClient) -> str:
    sslobj = client.writer.get_extra_info("ssl_object")
    return hashlib.sha256(sslobj.getpeercert(binary_form=True)).hexdigest()


def make_ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], names: list[str]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(ca[1], hashes.SHA256())
    )
    return cert, key


def pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    data = b""
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return data + cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


# -- the Dockyard CA ---------------------------------------------------------------------------------


def test_first_start_makes_a_name_constrained_ca_and_a_wildcard_for_the_platform_domain(
    tmp_path: Path,
) -> None:
    settings = edge_settings(tmp_path)
    made = tls.ensure_platform_certificate(settings)
    assert made.created_ca and made.issued
    ca = x509.load_pem_x509_certificate(settings.tls_ca_cert_file.read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert [n.value for n in constraints.value.permitted_subtrees or ()] == [DOMAIN]
    leaf = x509.load_pem_x509_certificate(settings.tls_platform_cert_file.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted([f"*.{DOMAIN}", DOMAIN])
    leaf.verify_directly_issued_by(ca)
    for secret in (settings.tls_ca_key_file, settings.tls_platform_cert_file):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.secrets_dir.stat().st_mode) == 0o700
    assert len(made.ca_fingerprint.split(":")) == 32


def test_a_later_start_keeps_the_ca_and_the_wildcard(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    tls.ensure_platform_certificate(settings)
    before = (settings.tls_ca_cert_file.read_bytes(), settings.tls_platform_cert_file.read_bytes())
    again = tls.ensure_platform_certificate(settings)
    assert not again.created_ca and not again.issued
    after = (settings.tls_ca_cert_file.read_bytes(), settings.tls_platform_cert_file.read_bytes())
    assert after == before


def test_the_wildcard_is_issued_again_when_it_nears_its_end(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    tls.ensure_platform_certificate(settings)
    later = datetime.now(UTC) + tls.CERT_VALIDITY - tls.RENEW_BEFORE + timedelta(days=1)
    renewed = tls.ensure_platform_certificate(settings, now=later)
    assert renewed.issued and not renewed.created_ca
    leaf = x509.load_pem_x509_certificate(settings.tls_platform_cert_file.read_bytes())
    assert leaf.not_valid_after_utc > later + timedelta(days=300)


def test_a_new_platform_domain_gets_a_new_ca_because_the_old_one_may_not_vouch_for_it(
    tmp_path: Path,
) -> None:
    tls.ensure_platform_certificate(edge_settings(tmp_path))
    moved = dataclasses.replace(edge_settings(tmp_path), domain="apps.example.net")
    made = tls.ensure_platform_certificate(moved)
    assert made.created_ca and made.issued
    leaf = x509.load_pem_x509_certificate(moved.tls_platform_cert_file.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "*.apps.example.net" in san.get_values_for_type(x509.DNSName)


def test_an_operators_certificate_is_served_and_no_ca_is_made(tmp_path: Path) -> None:
    ca = make_ca("Operator CA")
    cert, key = issue(ca, [f"*.{DOMAIN}"])
    (tmp_path / "op.crt").write_bytes(pem(cert))
    (tmp_path / "op.key").write_bytes(pem(cert, key).split(b"-----BEGIN CERTIFICATE")[0])
    settings = edge_settings(
        tmp_path / "data",
        tls_cert_file=str(tmp_path / "op.crt"),
        tls_key_file=str(tmp_path / "op.key"),
    )
    made = tls.ensure_platform_certificate(settings)
    assert made.ca_file is None and not settings.tls_ca_cert_file.exists()
    assert made.certfile == tmp_path / "op.crt"


async def test_the_operators_certificate_is_what_https_clients_get(
    tmp_path: Path, backend: Backend
) -> None:
    ca = make_ca("Operator CA")
    cert, key = issue(ca, [f"*.{DOMAIN}"])
    (tmp_path / "op.pem").write_bytes(pem(cert, key))
    settings = edge_settings(tmp_path / "data", tls_cert_file=str(tmp_path / "op.pem"))
    context = ssl.create_default_context(cadata=pem(ca[0]).decode())
    async with running(settings, table(route("myapp", [backend.address]))) as h:
        client = await https_client(h.router.tls_port, context)
        try:
            response = await client.request("/")
            assert peer_fingerprint(client) == fingerprint(cert)
        finally:
            await client.close()
    assert response.status == 200


# -- HTTPS requests ----------------------------------------------------------------------------------


async def test_an_https_request_reaches_the_dyno_with_forwarded_proto_https_and_the_port(
    tmp_path: Path, backend: Backend
) -> None:
    settings = edge_settings(tmp_path)
    async with running(settings, table(route("myapp", [backend.address]))) as h:
        client = await https_client(h.router.tls_port, trusting(settings))
        try:
            response = await client.request("/secure")
        finally:
            await client.close()
        messages = await h.log_messages()
    assert response.status == 200
    seen = backend.seen[0]
    assert seen.header("X-Forwarded-Proto") == "https"
    assert seen.header("X-Forwarded-Port") == str(h.router.tls_port)
    assert messages[-1].endswith("protocol=https")


async def test_plain_http_still_says_http(tmp_path: Path, backend: Backend) -> None:
    settings = edge_settings(tmp_path)
    async with running(settings, table(route("myapp", [backend.address]))) as h:
        client = await RawClient.open(h.port)
        try:
            response = await client.request("/")
        finally:
            await client.close()
    assert response.status == 200
    assert backend.seen[0].header("X-Forwarded-Proto") == "http"
    assert backend.seen[0].header("X-Forwarded-Port") == str(h.port)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_tls_12_and_13_are_spoken(
    tmp_path: Path, backend: Backend, version: ssl.TLSVersion
) -> None:
    settings = edge_settings(tmp_path)
    async with running(settings, table(route("myapp", [backend.address]))) as h:
        context = trusting(settings, minimum_version=version, maximum_version=version)
        client = await https_client(h.router.tls_port, context)
        try:
            response = await client.request("/")
            sslobj = client.writer.get_extra_info("ssl_object")
            spoken, cipher = sslobj.version(), sslobj.cipher()[0]
        finally:
            await client.close()
    assert response.status == 200
    assert spoken == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert "GCM" in cipher or "CHACHA20" in cipher


def old_client(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers only an old protocol version (which OpenSSL allows at level 0)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        context.minimum_version = context.maximum_version = version
    return context


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
async def test_tls_10_and_11_are_refused_though_the_client_can_speak_them(
    tmp_path: Path, version: ssl.TLSVersion
) -> None:
    settings = edge_settings(tmp_path)
    # An old-fashioned server first: the client really offers the old version.
    platform = tls.ensure_platform_certificate(settings)
    lenient = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lenient.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        lenient.minimum_version = ssl.TLSVersion.TLSv1
    lenient.load_cert_chain(platform.certfile)
    control = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=lenient)
    port = control.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=old_client(version))
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1", "TLSv1.1")
    writer.close()
    control.close()
    async with running(settings, table()) as h:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection("127.0.0.1", h.router.tls_port, ssl=old_client(version))


async def test_cbc_and_static_rsa_ciphers_are_refused(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:AES128-SHA:AES128-GCM-SHA256")
    async with running(settings, table()) as h:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection("127.0.0.1", h.router.tls_port, ssl=context)


# -- SNI -----------------------------------------------------------------------------------------------


def install_endpoint(settings: Settings, endpoint_id: str, names: list[str]) -> AppCertificate:
    cert, key = issue(make_ca("Customer CA"), names)
    settings.sni_endpoints_dir.mkdir(parents=True, exist_ok=True)
    (settings.sni_endpoints_dir / f"{endpoint_id}.pem").write_bytes(pem(cert, key))
    return AppCertificate(
        endpoint_id, fingerprint(cert), tuple(names), cert.not_valid_after_utc.isoformat()
    )


async def fingerprint_for(port: int, server_name: str | None) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = await https_client(port, context, server_name)
    try:
        return peer_fingerprint(client)
    finally:
        await client.close()


async def test_sni_picks_the_apps_certificate_for_its_custom_domain_and_the_wildcard_otherwise(
    tmp_path: Path, backend: Backend
) -> None:
    settings = edge_settings(tmp_path)
    shop = install_endpoint(settings, "sni-shop", ["shop.example.org"])
    wild = install_endpoint(settings, "sni-wild", ["*.example.net"])
    routes = table(
        route(
            "myapp",
            [backend.address],
            hostnames=(HOST, "shop.example.org", "*.example.net", "other.example.com"),
            certificates=(shop, wild),
        )
    )
    platform = tls.ensure_platform_certificate(settings)
    default = fingerprint(x509.load_pem_x509_certificate(platform.certfile.read_bytes()))
    async with running(settings, routes) as h:
        port = h.router.tls_port
        assert await fingerprint_for(port, "shop.example.org") == shop.fingerprint
        assert await fingerprint_for(port, "SHOP.example.org") == shop.fingerprint
        assert await fingerprint_for(port, "blog.example.net") == wild.fingerprint
        assert await fingerprint_for(port, HOST) == default
        assert await fingerprint_for(port, "other.example.com") == default  # not covered
        assert await fingerprint_for(port, "unknown.example.com") == default
        assert await fingerprint_for(port, None) == default


async def test_a_certificate_serves_only_domains_of_its_own_app(
    tmp_path: Path, backend: Backend
) -> None:
    """App A cannot take over B's domain by uploading a certificate that names it."""
    settings = edge_settings(tmp_path)
    greedy = install_endpoint(settings, "sni-greedy", ["b.example.org"])
    routes = table(
        route("appa", [backend.address], certificates=(greedy,)),
        route("appb", [backend.address], hostnames=(f"appb.{DOMAIN}", "b.example.org")),
    )
    async with running(settings, routes) as h:
        assert await fingerprint_for(h.router.tls_port, "b.example.org") != greedy.fingerprint


async def test_certificates_follow_the_route_table(tmp_path: Path, backend: Backend) -> None:
    settings = edge_settings(tmp_path)
    first = install_endpoint(settings, "sni-1", ["shop.example.org"])
    hostnames = (HOST, "shop.example.org")
    async with running(
        settings, table(route("myapp", [backend.address], hostnames=hostnames))
    ) as h:
        port = h.router.tls_port
        assert await fingerprint_for(port, "shop.example.org") != first.fingerprint
        await h.publish(
            table(route("myapp", [backend.address], hostnames=hostnames, certificates=(first,)))
        )
        assert await fingerprint_for(port, "shop.example.org") == first.fingerprint
        second = install_endpoint(settings, "sni-1", ["shop.example.org"])  # certs:update
        await h.publish(
            table(route("myapp", [backend.address], hostnames=hostnames, certificates=(second,)))
        )
        assert await fingerprint_for(port, "shop.example.org") == second.fingerprint
        await h.publish(table(route("myapp", [backend.address], hostnames=hostnames)))
        assert await fingerprint_for(port, "shop.example.org") != second.fingerprint


async def test_a_missing_key_file_falls_back_to_the_default_certificate(
    tmp_path: Path, backend: Backend
) -> None:
    settings = edge_settings(tmp_path)
    lost = AppCertificate("sni-lost", "00" * 32, ("shop.example.org",))
    routes = table(
        route(
            "myapp", [backend.address], hostnames=(HOST, "shop.example.org"), certificates=(lost,)
        )
    )
    async with running(settings, routes) as h:
        client = await https_client(
            h.router.tls_port, trusting(settings, minimum_version=ssl.TLSVersion.TLSv1_2), HOST
        )
        try:
            assert (await client.request("/")).status == 200
        finally:
            await client.close()


def test_a_wildcard_name_covers_one_label_only() -> None:
    assert tls.covers("*.example.org", "shop.example.org")
    assert not tls.covers("*.example.org", "a.shop.example.org")
    assert not tls.covers("*.example.org", "example.org")
    assert tls.covers("*.example.org", "*.example.org")
    assert not tls.covers("shop.example.org", "*.example.org")


# -- redirects and HSTS --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
async def test_plain_http_is_redirected_to_https_when_the_app_asks(
    tmp_path: Path, backend: Backend, status: int
) -> None:
    settings = edge_settings(tmp_path)
    routes = table(route("myapp", [backend.address], https_redirect=status))
    async with running(settings, routes) as h:
        client = await RawClient.open(h.port)
        try:
            response = await client.request("/a/b?c=1", host=f"{HOST}:{h.port}")
            challenge = await client.request("/.well-known/acme-challenge/token")
        finally:
            await client.close()
        messages = await h.log_messages()
    assert response.status == status
    assert response.header("Location") == f"https://{HOST}:{h.router.tls_port}/a/b?c=1"
    assert response.body == b""
    assert challenge.status == 200, "ACME's HTTP challenges are never redirected"
    assert [s.path for s in backend.seen] == ["/.well-known/acme-challenge/token"]
    assert messages[0].startswith('at=info method=GET path="/a/b?c=1"')
    assert f"status={status}" in messages[0]


async def test_https_requests_are_not_redirected_and_plain_http_is_served_without_the_setting(
    tmp_path: Path, backend: Backend
) -> None:
    settings = edge_settings(tmp_path)
    routes = table(
        route("myapp", [backend.address], https_redirect=308),
        route("plain", [backend.address]),
    )
    async with running(settings, routes) as h:
        client = await https_client(h.router.tls_port, trusting(settings))
        plain = await RawClient.open(h.port)
        try:
            secure = await client.request("/")
            other = await plain.request("/", host=f"plain.{DOMAIN}")
        finally:
            await client.close()
            await plain.close()
    assert secure.status == other.status == 200


async def test_hsts_is_sent_on_https_responses_of_apps_that_ask_and_never_over_http(
    tmp_path: Path, backend: Backend
) -> None:
    settings = edge_settings(tmp_path)
    value = "max-age=31536000; includeSubDomains"
    routes = table(route("myapp", [backend.address], hsts=value), route("plain", [backend.address]))
    async with running(settings, routes) as h:
        secure = await https_client(h.router.tls_port, trusting(settings))
        other = await https_client(h.router.tls_port, trusting(settings), f"plain.{DOMAIN}")
        plain = await RawClient.open(h.port)
        try:
            over_tls = await secure.request("/")
            other_app = await other.request("/", host=f"plain.{DOMAIN}")
            over_http = await plain.request("/")
        finally:
            for client in (secure, other, plain):
                await client.close()
    assert over_tls.header("Strict-Transport-Security") == value
    assert other_app.header("Strict-Transport-Security") is None
    assert over_http.header("Strict-Transport-Security") is None


async def test_a_client_that_never_finishes_its_handshake_is_cut(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path, header_timeout=0.5)
    async with running(settings, table()) as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.router.tls_port)
        try:
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
    assert data == b""


async def test_https_and_http_share_keep_alive_semantics(tmp_path: Path, backend: Backend) -> None:
    settings = edge_settings(tmp_path)
    async with running(settings, table(route("myapp", [backend.address]))) as h:
        client = await https_client(h.router.tls_port, trusting(settings))
        try:
            client.writer.write(build_request("/1") + build_request("/2"))
            first = await read_response(client.reader)
            second = await read_response(client.reader)
        finally:
            await client.close()
    assert (first.status, second.status) == (200, 200)
    assert [s.path for s in backend.seen] == ["/1", "/2"]


def test_dockyard_up_says_how_to_trust_the_new_ca_once(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path, tls_port=8443)
    first = "\n".join(tls.install_notes(settings))
    made = tls.ensure_platform_certificate(settings)
    assert f"https://<app>.{DOMAIN}:8443/" in first
    assert made.ca_fingerprint in first
    assert "update-ca-certificates" in first and "NODE_EXTRA_CA_CERTS" in first
    assert "/.well-known/dockyard/ca.crt" in first
    later = "\n".join(tls.install_notes(settings))
    assert made.ca_fingerprint in later
    assert "update-ca-certificates" not in later


def test_dockyard_up_says_when_https_is_off(tmp_path: Path) -> None:
    assert tls.install_notes(edge_settings(tmp_path, tls=False)) == [
        "  HTTPS          : off (router.tls = false)"
    ]
    assert not edge_settings(tmp_path).tls_ca_cert_file.exists()


async def test_a_renewed_platform_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    settings = edge_settings(tmp_path)
    async with running(settings, table()) as h:
        port = h.router.tls_port
        before = await fingerprint_for(port, HOST)
        assert h.router.certificates is not None
        renewal = asyncio.create_task(
            tls.run_renewal(settings, h.router.certificates, interval=0.02)
        )
        settings.tls_platform_cert_file.unlink()  # as if it had expired: issued again
        try:
            after = before
            for _ in range(250):
                await asyncio.sleep(0.02)
                after = await fingerprint_for(port, HOST)
                if after != before:
                    break
        finally:
            renewal.cancel()
    leaf = x509.load_pem_x509_certificate(settings.tls_platform_cert_file.read_bytes())
    assert after == fingerprint(leaf) != before


def test_a_taken_https_port_costs_https_not_http(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        settings = edge_settings(
            tmp_path, port=free.getsockname()[1], tls_port=taken.getsockname()[1]
        )
        free.close()
        found = listeners(settings)
    assert [listener.scheme for listener in found] == ["http"]
    assert "HTTPS is off" in caplog.text and "DOCKYARD_ROUTER_TLS_PORT" in caplog.text
