"""Slug garbage collection: what it keeps (newest releases, current, pending, running, recent,
shared) and what it deletes; rollbacks to a collected slug are refused."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.releases import append_release, rollback
from dockyard.control.slugs import GRACE, collect_garbage, export_tarball
from dockyard.errors import InvalidError
from dockyard.settings import Settings
from dockyard.slug.image import make_image
from dockyard.store.records import App, Dyno
from dockyard.types import DynoName, ProcessType, ReleaseVersion
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", DOCKYARD_BUILD_SLUG_HISTORY="2")


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


def _app(platform: Platform, owner: NewUser, name: str) -> App:
    with platform.store.transaction() as tx:
        app = tx.create_app(name, owner.account.id, STACK)
        append_release(tx, app, slug_id=None, config={}, description="Initial", user=None)
    return app


def _image(platform: Platform, tmp_path: Path, content: str, *, old: bool = True) -> str:
    source = tmp_path / uuid.uuid4().hex
    source.mkdir()
    (source / "content").write_text(content)
    image = tmp_path / "image.squashfs"
    make_image(source, image)
    digest, _ = platform.slugs.put(image)
    if old:
        stamp = platform.slugs.path(digest).stat().st_mtime - GRACE - 60
        os.utime(platform.slugs.path(digest), (stamp, stamp))
    return digest


def _deploy(platform: Platform, app: App, digest: str) -> None:
    with platform.store.transaction() as tx:
        slug = tx.create_slug(
            app.id, digest=digest, size=1, process_types={"web": "x"}, commit=None, stack=STACK
        )
        append_release(tx, app, slug_id=slug.id, config={}, description="Deploy", user=None)


def test_collection_keeps_what_is_referenced_and_deletes_the_rest(
    platform: Platform, owner: NewUser, tmp_path: Path
) -> None:
    shop = _app(platform, owner, "shop")
    other = _app(platform, owner, "other")
    digests = [_image(platform, tmp_path, f"v{i}") for i in range(14)]
    for digest in digests[:13]:
        _deploy(platform, shop, digest)  # v2..v14; the newest 3 releases keep theirs
    _deploy(platform, other, digests[1])  # another app's newest release shares an old slug
    running = Dyno(
        id="d1",
        app_id=shop.id,
        name=DynoName("web.1"),
        type=ProcessType("web"),
        release_version=ReleaseVersion(4),  # the slug of v4 (digests[2]) still runs
        state="up",
        command="x",
        size="standard-1x",
        address=None,
        host="h",
        started_at=platform.clock.now(),
        updated_at=platform.clock.now(),
    )
    with platform.store.transaction() as tx:
        tx.replace_dynos("h", [running])
    fresh = _image(platform, tmp_path, "just built", old=False)  # not released yet
    with platform.store.read() as tx:
        oldest = tx.get_slug(tx.get_release(shop.id, 2).slug_id or "")
    export = export_tarball(platform, oldest)

    deleted = collect_garbage(platform, keep=3)

    assert set(deleted) == {digests[i] for i in (0, 3, 4, 5, 6, 7, 8, 9, 13)}
    assert platform.slugs.digests() == {digests[i] for i in (1, 2, 10, 11, 12)} | {fresh}
    assert not export.exists()
    assert collect_garbage(platform, keep=3) == []


def test_rolling_back_to_a_collected_slug_is_refused(
    platform: Platform, owner: NewUser, tmp_path: Path
) -> None:
    shop = _app(platform, owner, "shop")
    for i in range(4):
        _deploy(platform, shop, _image(platform, tmp_path, f"v{i}"))
    collect_garbage(platform)

    with pytest.raises(InvalidError, match="was removed by garbage collection"):
        rollback(platform, owner.account, "shop", "2")
    assert rollback(platform, owner.account, "shop", "4").version == 6
