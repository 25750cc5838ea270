"""Log drains as use cases: tokens, the per-app limit, refused addresses (no SSRF), who may, and
platform lines that never show a drain's URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
from dockyard.audit.writer import AuditWriter
from dockyard.control import drains
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.errors import ConflictError, InvalidError, NotFoundError
from dockyard.settings import Settings
from dockyard.store.records import App
from tests.conftest import make_settings


@pytest.fixture
def open_platform(
    tmp_path: Path, clock: FakeClock, start_audit_writer: Callable[[Settings], AuditWriter]
) -> Iterator[Platform]:
    """A platform whose operator allows drains to loopback (the receivers of these tests)."""
    settings = make_settings(tmp_path / "data", DOCKYARD_LOGS_ALLOW_PRIVATE_DRAINS="true")
    start_audit_writer(settings)
    plat = Platform.open(settings, clock=clock)
    yield plat
    plat.close()


@pytest.fixture
def owner(open_platform: Platform) -> NewUser:
    return create_user(open_platform, "owner@example.com")


@pytest.fixture
def app(open_platform: Platform, owner: NewUser) -> App:
    with open_platform.store.transaction() as tx:
        return tx.create_app("shipit", owner.account.id, STACK)


def test_a_drain_gets_a_token_and_is_listed(
    open_platform: Platform, owner: NewUser, app: App
) -> None:
    _, drain = drains.add_drain(
        open_platform, owner.account, "shipit", "syslog+tls://127.0.0.1:6514"
    )
    assert drain.token == f"d.{drain.id}"
    _, listed = drains.list_drains(open_platform, owner.account, "shipit")
    assert [d.url for d in listed] == ["syslog+tls://127.0.0.1:6514"]
    assert drains.drain_configs(open_platform.store)[0].token == drain.token
    for ref in (drain.id, drain.token, drain.url):
        assert drains.get_drain(open_platform, owner.account, "shipit", ref)[1] == drain


def test_platform_lines_name_the_token_never_the_url(
    open_platform: Platform, owner: NewUser, app: App
) -> None:
    url = "https://user:s3cret@127.0.0.1:8443/in"
    _, drain = drains.add_drain(open_platform, owner.account, "shipit", url)
    drains.remove_drain(open_platform, owner.account, "shipit", url)
    text = "\n".join(x.message for x in open_platform.logs.tail(app.id, 10))
    assert f"Add drain {drain.token} by owner@example.com" in text
    assert f"Remove drain {drain.token} by owner@example.com" in text
    assert "s3cret" not in text


def test_an_app_has_at_most_five_drains_and_no_duplicates(
    open_platform: Platform, owner: NewUser, app: App
) -> None:
    for port in range(4):
        drains.add_drain(open_platform, owner.account, "shipit", f"syslog://127.0.0.1:{514 + port}")
    with pytest.raises(ConflictError, match="already been taken"):
        drains.add_drain(open_platform, owner.account, "shipit", "syslog://127.0.0.1:514")
    drains.add_drain(open_platform, owner.account, "shipit", "syslog://127.0.0.1:600")
    with pytest.raises(InvalidError, match="the most an app may have"):
        drains.add_drain(open_platform, owner.account, "shipit", "syslog://127.0.0.1:601")
    assert len(drains.list_drains(open_platform, owner.account, "shipit")[1]) == 5


def test_drains_to_internal_addresses_are_refused_by_default(
    platform: Platform, tmp_path: Path
) -> None:
    owner = create_user(platform, "owner@example.com")
    with platform.store.transaction() as tx:
        tx.create_app("shipit", owner.account.id, STACK)
    for url in (
        "syslog://127.0.0.1:514",
        "https://10.0.0.5/logs",
        "https://169.254.169.254/latest",
        "syslog+tls://localhost:6514",
    ):
        with pytest.raises(InvalidError, match="public addresses only"):
            drains.add_drain(platform, owner.account, "shipit", url)
    assert drains.list_drains(platform, owner.account, "shipit")[1] == []


def test_malformed_urls_are_refused(open_platform: Platform, owner: NewUser, app: App) -> None:
    for url in ("ftp://example.com", "syslog://example.com", "https://"):
        with pytest.raises(InvalidError):
            drains.add_drain(open_platform, owner.account, "shipit", url)


def test_strangers_cannot_see_or_add_drains(
    open_platform: Platform, owner: NewUser, app: App
) -> None:
    stranger = create_user(open_platform, "mallory@example.com")
    with pytest.raises(NotFoundError):
        drains.add_drain(open_platform, stranger.account, "shipit", "syslog://127.0.0.1:514")
    with pytest.raises(NotFoundError):
        drains.list_drains(open_platform, stranger.account, "shipit")
