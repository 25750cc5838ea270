"""An app's own certificate from the API's use case to the router's handshake: the control plane checks
it and writes its key file, the route table names it, the router serves it by SNI for the app's custom
domain — and stops when it is removed; the app's router settings redirect plain HTTP to HTTPS."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from dockyard._util.clock import FakeClock
from dockyard.control import certificates, router_settings
from dockyard.control.accounts import create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.dataplane import route_table
from dockyard.logs.store import FileLogStore
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer
from dockyard.settings import RouterSettings
from tests.control.certificate_support import authority, server
from tests.router.support import RawClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def served_fingerprint(port: int, name: str) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return hashlib.sha256(der).hexdigest()


async def test_an_apps_certificate_is_served_for_its_domain_until_removed(
    platform: Platform, clock: FakeClock, tmp_path: Path
) -> None:
    owner = create_user(platform, "owner@example.com")
    with platform.store.transaction() as tx:
        app = tx.create_app("shop", owner.account.id, STACK)
        tx.add_domain(app.id, "shop.example.org", "custom")
    leaf = server(["shop.example.org"], clock.now(), issuer=authority("Root", clock.now()))
    _, (endpoint, _) = certificates.add_endpoint(
        platform, owner.account, "shop", leaf.pem, leaf.key_pem
    )
    router_settings.update_settings(platform, owner.account, "shop", {"https_redirect": 308})
    expected = hashlib.sha256(leaf.cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    settings = dataclasses.replace(
        platform.settings,
        router=RouterSettings(host="127.0.0.1", port=0, refresh_interval=3600),
    )
    source = FakeRouteSource(route_table(platform))
    router = RouterServer(
        settings,
        source,
        options=ProxyOptions(sweep_interval=0.05),
        poll=False,
        log_store=FileLogStore(tmp_path / "logs"),
    )
    await router.start()
    try:
        await router.refresh()
        assert await served_fingerprint(router.tls_port, "shop.example.org") == expected
        client = await RawClient.open(router.port)
        try:
            moved = await client.request("/cart", host="shop.example.org")
        finally:
            await client.close()
        assert moved.status == 308
        assert moved.header("Location") == f"https://shop.example.org:{router.tls_port}/cart"

        certificates.remove_endpoint(platform, owner.account, "shop", endpoint.name)
        source.publish(route_table(platform))
        assert await router.refresh()
        assert await served_fingerprint(router.tls_port, "shop.example.org") != expected
    finally:
        await router.stop(grace=1.0)
