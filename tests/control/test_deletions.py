"""Soft deletion: a deleted app's drains stop at once; the purge 7 days later leaves nothing of it
behind — records, certificate keys, git repository, build cache, log history."""

from __future__ import annotations

import pytest

from dockyard._util.clock import FakeClock
from dockyard.control import certificates, deletions
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.apps import create_app
from dockyard.control.context import Platform
from dockyard.control.drains import drain_configs
from dockyard.errors import NotFoundError
from dockyard.store.records import App
from tests.control.certificate_support import authority, server


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


def make_app(platform: Platform, owner: NewUser, name: str, clock: FakeClock) -> App:
    """An app with a certificate, a drain, a repository, a build cache and log lines."""
    app = create_app(platform, owner.account, name)
    issued = server([f"{name}.example.org"], clock.now(), issuer=authority("Root", clock.now()))
    certificates.add_endpoint(platform, owner.account, name, issued.pem, issued.key_pem)
    with platform.store.transaction() as tx:
        tx.add_log_drain(app.id, f"syslog+tls://logs.example.com:6514/{name}")
    settings = platform.settings
    (settings.repos_dir / f"{app.id}.git").mkdir(parents=True)
    (settings.repos_dir / f"{app.id}.git" / "HEAD").write_text("ref: refs/heads/main\n")
    (settings.cache_dir / app.id / "python").mkdir(parents=True)
    platform.log(app.id, "app", "web.1", "hello")
    return app


def key_files(platform: Platform) -> set[str]:
    return {p.name for p in platform.settings.sni_endpoints_dir.iterdir()}


def endpoint_key_files(platform: Platform, app: App) -> set[str]:
    with platform.store.read() as tx:
        return {f"{e.id}.pem" for e in tx.list_sni_endpoints(app.id)}


def test_a_purged_app_leaves_no_key_file_repository_cache_or_log_history(
    platform: Platform, owner: NewUser, clock: FakeClock
) -> None:
    shop = make_app(platform, owner, "shop", clock)
    blog = make_app(platform, owner, "blog", clock)
    shop_keys, blog_keys = endpoint_key_files(platform, shop), endpoint_key_files(platform, blog)
    deletions.soft_delete(platform, owner.account, "shop")
    assert key_files(platform) == shop_keys | blog_keys  # restorable: nothing is gone yet
    clock.advance(deletions.RETENTION.total_seconds() + 1)
    assert deletions.purge_due(platform) == ["shop"]
    settings = platform.settings
    assert key_files(platform) == blog_keys
    assert not (settings.repos_dir / f"{shop.id}.git").exists()
    assert not (settings.cache_dir / shop.id).exists()
    assert platform.logs.segments(shop.id) == []
    with platform.store.read() as tx, pytest.raises(NotFoundError):
        tx.get_app(shop.id)
    assert (settings.repos_dir / f"{blog.id}.git" / "HEAD").is_file()
    assert (settings.cache_dir / blog.id / "python").is_dir()
    assert [line.message for line in platform.logs.tail(blog.id, 10)][-1] == "hello"


def test_a_deleted_apps_drains_stop_and_come_back_with_a_restore(
    platform: Platform, owner: NewUser, clock: FakeClock
) -> None:
    shop = make_app(platform, owner, "shop", clock)
    blog = make_app(platform, owner, "blog", clock)
    assert {d.app_id for d in drain_configs(platform.store)} == {shop.id, blog.id}
    deletions.soft_delete(platform, owner.account, "shop")
    assert {d.app_id for d in drain_configs(platform.store)} == {blog.id}
    deletions.restore(platform, owner.account, "shop")
    assert {d.app_id for d in drain_configs(platform.store)} == {shop.id, blog.id}
