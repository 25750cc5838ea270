"""Slugs: info, the tar.gz export behind ``blob.url``, uploads of tar.gz slugs, and garbage collection.

A slug image stays in the slug store while any app references it from one of its newest
``[build] slug_history`` releases, from its current release, from a pending release, or from a
dyno that runs; anything else (and older than ``GRACE`` seconds, so a slug built or uploaded a
moment ago and not yet released is safe) is deleted after each release. The slug records stay, so
old releases still say which slug they had; rolling back to one whose image is gone is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import time
import uuid
from pathlib import Path

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.errors import NotFoundError
from dockyard.slug.image import extract_image
from dockyard.store import Tx
from dockyard.store.records import Account, App, Slug

log = logging.getLogger(__name__)

GRACE = 3600.0
"""Seconds a slug image is kept after it entered the store even when nothing references it yet."""


def referenced_digests(tx: Tx, keep: int) -> set[str]:
    """Digests no garbage collection may delete (see the module docstring)."""
    digests: set[str] = set()
    slug_ids: set[str] = set()
    for app in tx.list_apps():
        releases = tx.list_releases(app.id)
        wanted = releases[-keep:] if keep > 0 else []
        wanted += [r for r in releases if r.status == "pending"]
        current = tx.current_release(app.id)
        if current is not None:
            wanted.append(current)
        running = {d.release_version for d in tx.list_dynos(app.id)}
        wanted += [r for r in releases if r.version in running]
        slug_ids.update(r.slug_id for r in wanted if r.slug_id is not None)
    for slug_id in slug_ids:
        with contextlib.suppress(NotFoundError):
            digests.add(tx.get_slug(slug_id).digest)
    return digests


def collect_garbage(platform: Platform, *, keep: int | None = None) -> list[str]:
    """Delete slug images nothing references any more; returns their digests."""
    keep = platform.settings.build.slug_history if keep is None else keep
    with platform.store.read() as tx:
        protected = referenced_digests(tx, keep)
    now = time.time()
    deleted = []
    for digest in sorted(platform.slugs.digests() - protected):
        path = platform.slugs.path(digest)
        try:
            if now - path.stat().st_mtime < GRACE:
                continue
        except OSError:
            continue
        platform.slugs.delete(digest)
        _export_path(platform, digest).unlink(missing_ok=True)
        deleted.append(digest)
    if deleted:
        log.info("slug garbage collection deleted %d image(s)", len(deleted))
    return deleted


def collect_garbage_quietly(platform: Platform) -> None:
    """``collect_garbage`` for the end of a release: a failure is logged, never raised."""
    try:
        collect_garbage(platform)
    except Exception:
        log.exception("slug garbage collection failed")


def slug_available(platform: Platform, slug: Slug) -> bool:
    return platform.slugs.exists(slug.digest)


def get_slug(platform: Platform, account: Account, app_ref: str, slug_id: str) -> tuple[App, Slug]:
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, slug_of_app(tx, app, slug_id)


def slug_of_app(tx: Tx, app: App, slug_id: str) -> Slug:
    try:
        slug = tx.get_slug(slug_id)
    except NotFoundError:
        slug = None
    if slug is None or slug.app_id != app.id:
        raise NotFoundError(f"Couldn't find that slug: {slug_id}")
    return slug


def _export_path(platform: Platform, digest: str) -> Path:
    return platform.settings.data_dir / "slug-exports" / f"{digest}.tgz"


def export_tarball(platform: Platform, slug: Slug) -> Path:
    """The slug as Heroku's slug format (a tar.gz with the files under ``./app/``), made once per
    image and kept next to it until the image is deleted."""
    target = _export_path(platform, slug.digest)
    if target.is_file():
        return target
    try:
        image = platform.slugs.get(slug.digest)
    except NotFoundError as exc:
        raise NotFoundError(
            f"The image of slug {slug.id} was removed by garbage collection (only the newest "
            f"{platform.settings.build.slug_history} releases of an app keep theirs)"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{uuid.uuid4().hex}"
    partial = target.parent / f".{uuid.uuid4().hex}.tgz"
    try:
        extract_image(image, scratch)
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(scratch, arcname="./app", filter=_normalise)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def checksum(slug: Slug) -> str:
    """Heroku's ``SHA256:<hex>``: here the digest of the SquashFS image dynos run (and verify)."""
    return f"SHA256:{slug.digest}"
