"""Apps' own certificates (SNI endpoints) as use cases: what is checked before anything is stored,
where the private key goes (a 0600 file, never the database), updates and removals, and what the
route table tells the router; and the per-app router settings."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import Store
from sqlalchemy import text

from dockyard._util.clock import FakeClock
from dockyard.control import certificates, router_settings
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.dataplane import route_table
from dockyard.errors import InvalidError, NotFoundError
from dockyard.store.records import App
from tests.control.certificate_support import Issued, authority, key_pem, server


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    with platform.store.transaction() as tx:
        created = tx.create_app("shop", owner.account.id, STACK)
        tx.add_domain(created.id, "shop.example.org", "custom")
        tx.add_domain(created.id, "blog.example.net", "custom")
        return created


@pytest.fixture
def ca(clock: FakeClock) -> Issued:
    return authority("Example Root", clock.now())


def add(platform: Platform, owner: NewUser, chain: str, key: str) -> certificates.Served:
    return certificates.add_endpoint(platform, owner.account, "shop", chain, key)[1]


# -- what is checked --------------------------------------------------------------------------


def test_a_certificate_is_read_and_its_key_kept_in_a_private_file_not_the_database(
    platform: Platform, owner: NewUser, app: App, ca: Issued, clock: FakeClock
) -> None:
    leaf = server(["shop.example.org", "www.example.org"], clock.now(), issuer=ca)
    endpoint, domains = add(platform, owner, leaf.pem, leaf.key_pem)
    cert = endpoint.certificate
    assert cert.cert_domains == ("shop.example.org", "www.example.org")
    assert cert.subject == "/C=NL/O=Example/CN=shop.example.org"
    assert cert.issuer == "/C=NL/O=Example/CN=Example Root"
    assert cert.expires_at == leaf.cert.not_valid_after_utc
    assert not cert.self_signed and not cert.ca_signed
    assert len(endpoint.name) >= 3 and endpoint.name[0].isalpha()
    with platform.store.read() as tx:
        assert domains == tuple(
            d.id for d in tx.list_domains(app.id) if d.hostname == "shop.example.org"
        )
    path = certificates.key_file(platform.settings, endpoint.id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "PRIVATE KEY" in path.read_text()
    with platform.store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM sni_endpoints")).one()
    assert not any("PRIVATE KEY" in str(value) for value in row)


def test_the_chain_is_put_in_order_from_the_servers_certificate_up(
    platform: Platform, owner: NewUser, app: App, ca: Issued, clock: FakeClock
) -> None:
    middle = authority("Example Intermediate", clock.now(), issuer=ca)
    leaf = server(["shop.example.org"], clock.now(), issuer=middle)
    endpoint, _ = add(platform, owner, middle.pem + leaf.pem, leaf.key_pem)
    assert endpoint.certificate.certificate_chain == leaf.pem + middle.pem
    assert endpoint.certificate.issuer.endswith("CN=Example Intermediate")


def test_ca_signed_says_whether_the_chain_leads_to_a_trusted_root(
    ca: Issued, clock: FakeClock
) -> None:
    middle = authority("Example Intermediate", clock.now(), issuer=ca)
    leaf = server(["shop.example.org"], clock.now(), issuer=middle)
    chain = leaf.pem + middle.pem
    trusted, _ = certificates.check_certificate(
        chain, leaf.key_pem, clock.now(), trusted=Store([ca.cert])
    )
    other = authority("Someone Else", clock.now())
    untrusted, _ = certificates.check_certificate(
        chain, leaf.key_pem, clock.now(), trusted=Store([other.cert])
    )
    assert trusted.ca_signed and not untrusted.ca_signed


def test_a_self_signed_certificate_is_accepted_and_said_to_be(clock: FakeClock) -> None:
    alone = server(["shop.example.org"], clock.now())
    info, _ = certificates.check_certificate(alone.pem, alone.key_pem, clock.now())
    assert info.self_signed and not info.ca_signed


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("key of another certificate", "private_key", "does not match"),
        ("expired", "certificate_chain", "expired"),
        ("expired intermediate", "certificate_chain", "expired"),
        ("not PEM", "certificate_chain", "cannot be read"),
        ("key not PEM", "private_key", "not a PEM private key"),
        ("key with a passphrase", "private_key", "passphrase"),
        ("small RSA key", "private_key", "1024 bits"),
        ("stranger in the chain", "certificate_chain", "not part of the chain"),
    ],
)
def test_a_bad_certificate_or_key_is_refused_and_nothing_is_stored(
    platform: Platform,
    owner: NewUser,
    app: App,
    ca: Issued,
    clock: FakeClock,
    case: str,
    field: str,
    message: str,
) -> None:
    now = clock.now()
    leaf = server(["shop.example.org"], now, issuer=ca)
    chain, key = leaf.pem, leaf.key_pem
    if case == "key of another certificate":
        key = server(["shop.example.org"], now).key_pem
    elif case == "expired":
        old = server(["shop.example.org"], now, issuer=ca, days=-1, starts=timedelta(days=90))
        chain, key = old.pem, old.key_pem
    elif case == "expired intermediate":
        middle = authority("Old Intermediate", now, issuer=ca, days=-1)
        young = server(["shop.example.org"], now, issuer=middle)
        chain, key = young.pem + middle.pem, young.key_pem
    elif case == "not PEM":
        chain = "hello"
    elif case == "key not PEM":
        key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    elif case == "key with a passphrase":
        key = key_pem(leaf.key, b"secret")
    elif case == "small RSA key":
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
        weak = server(["shop.example.org"], now, issuer=ca, key=small)
        chain, key = weak.pem, weak.key_pem
    elif case == "stranger in the chain":
        chain = leaf.pem + authority("Unrelated", now).pem
    with pytest.raises(InvalidError, match=message) as raised:
        add(platform, owner, chain, key)
    assert raised.value.field == field
    with platform.store.read() as tx:
        assert tx.list_sni_endpoints() == []
    directory = platform.settings.sni_endpoints_dir
    assert not directory.exists() or list(directory.iterdir()) == []


def test_strangers_cannot_add_or_see_certificates(
    platform: Platform, owner: NewUser, app: App, ca: Issued, clock: FakeClock
) -> None:
    stranger = create_user(platform, "stranger@example.com")
    leaf = server(["shop.example.org"], clock.now(), issuer=ca)
    with pytest.raises(NotFoundError):
        certificates.add_endpoint(platform, stranger.account, "shop", leaf.pem, leaf.key_pem)
    with pytest.raises(NotFoundError):
        certificates.list_endpoints(platform, stranger.account, "shop")


# -- updates and removals ---------------------------------------------------------------------


def test_an_update_replaces_the_chain_and_the_key_file(
    platform: Platform, owner: NewUser, app: App, ca: Issued, clock: FakeClock
) -> None:
    first = server(["shop.example.org"], clock.now(), issuer=ca)
    endpoint, _ = add(platform, owner, first.pem, first.key_pem)
    second = server(["*.example.net"], clock.now(), issuer=ca)
    _, (updated, domains) = certificates.update_endpoint(
        platform, owner.account, "shop", endpoint.name, second.pem, second.key_pem
    )
    assert updated.id == endpoint.id and updated.name == endpoint.name
    assert updated.certificate.cert_domains == ("*.example.net",)
    assert len(domains) == 1
    path = certificates.key_file(platform.settings, endpoint.id)
    assert path.read_text().endswith(second.pem)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_removal_forgets_the_endpoint_and_deletes_its_key(
    platform: Platform, owner: NewUser, app: App, ca: Issued, clock: FakeClock
) -> None:
    leaf = server(["shop.example.org"], clock.now(), issuer=ca)
    endpoint, _ = add(platform, owner, leaf.pem, leaf.key_pem)
    certificates.remove_endpoint(platform, owner.account, "shop", endpoint.id)
    assert not certificates.key_file(platform.settings, endpoint.id).exists()
    with pytest.raises(NotFoundError):
        certificates.get_endpoint(platform, owner.account, "shop", endpoint.name)


def test_key_files_no_endpoint_owns_are_removed_once_old(
    platform: Platform, owner: NewUser, app: App
) -> None:
    directory = platform.settings.sni_endpoints_dir
    directory.mkdir(parents=True)
    orphan = directory / "0d0f6b4c-0000-4000-8000-000000000000.pem"
    orphan.write_text("key of a deleted app")
    assert certificates.prune_key_files(platform) == []  # too young: it may be being created
    old = 1_000_000_000
    os.utime(orphan, (old, old))
    assert certificates.prune_key_files(platform) == [orphan.name.removesuffix(".pem")]
    assert not orphan.exists()


# -- what the router is told ------------------------------------------------------------------


def test_the_route_table_carries_the_apps_certificates_and_router_settings(
    platform: Platform, owner: NewUser, app: App, ca: Issued, clock: FakeClock
) -> None:
    leaf = server(["shop.example.org"], clock.now(), issuer=ca)
    endpoint, _ = add(platform, owner, leaf.pem, leaf.key_pem)
    router_settings.update_settings(
        platform,
        owner.account,
        "shop",
        {
            "cache": True,
            "https_redirect": 308,
            "hsts_max_age": 31536000,
            "hsts_include_subdomains": True,
            "connection_limit": 50,
        },
    )
    (shop,) = route_table(platform).routes
    assert shop.cache and shop.https_redirect == 308 and shop.connection_limit == 50
    assert shop.hsts == "max-age=31536000; includeSubDomains"
    (cert,) = shop.certificates
    assert (cert.id, cert.fingerprint) == (endpoint.id, endpoint.certificate.fingerprint)
    assert cert.domains == ("shop.example.org",)


def test_an_app_that_set_nothing_has_the_defaults(platform: Platform, app: App) -> None:
    (shop,) = route_table(platform).routes
    assert (shop.cache, shop.https_redirect, shop.hsts, shop.connection_limit) == (False, 0, "", 0)
    assert shop.certificates == ()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"https_redirect": 302}, "https_redirect"),
        ({"hsts_max_age": -1}, "hsts_max_age"),
        ({"hsts_max_age": 31536000, "hsts_preload": True}, "hsts_preload"),
        ({"connection_limit": -5}, "connection_limit"),
        ({"cache": None}, "cache"),
    ],
)
def test_impossible_router_settings_are_refused(
    platform: Platform, owner: NewUser, app: App, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidError) as raised:
        router_settings.update_settings(platform, owner.account, "shop", dict(changes))
    assert raised.value.field == field
    assert router_settings.get_settings(platform, owner.account, "shop")[1].updated_at is None


def test_null_turns_a_redirect_off_and_gives_back_the_default_limit(
    platform: Platform, owner: NewUser, app: App
) -> None:
    router_settings.update_settings(
        platform, owner.account, "shop", {"https_redirect": 301, "connection_limit": 10}
    )
    _, config = router_settings.update_settings(
        platform, owner.account, "shop", {"https_redirect": None, "connection_limit": None}
    )
    assert (config.https_redirect, config.connection_limit) == (0, 0)
