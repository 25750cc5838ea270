"""Slugs: info, the tar.gz export behind ``blob.url``, uploads of tar.gz slugs, and garbage collection.

A slug image stays in the slug store while any app references it from one of its newest
``[build] slug_history`` releases, from its current release, from a pending release, or from a
dyno that runs; anything else (and older than ``GRACE`` seconds, so a slug built or uploaded a
moment ago and not yet released is safe) is deleted after each release. The slug records stay, so
old releases still say which slug they had; rolling back to one whose image is gone is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tarfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard.build.archive import extract_tarball
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.control.sources import (
    SOURCE_TTL,
    Spool,
    live_source,
    signed_url,
    upload_file,
    verify,
)
from dockyard.domain.formation import validate_process_type
from dockyard.errors import ConflictError, InvalidError, NotFoundError
from dockyard.slug.image import extract_image, make_image
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


def get_slug(
    platform: Platform, account: Account, app_ref: str, slug_ref: str
) -> tuple[App, Slug | SlugUpload]:
    """A slug by id, or the upload ``POST /apps/{app}/slugs`` announced under that id."""
    with platform.store.read() as tx:
        app = app_for(tx, account, app_ref)
        return app, resolve(platform, tx, app, slug_ref)


def blob_url(platform: Platform, slug: Slug) -> str:
    """A signed URL of the slug's tar.gz export (Heroku's ``blob.url``)."""
    key = f"{slug.app_id}/{slug.id}"
    return signed_url(platform, f"/slug-blobs/{key}", "slug-get", key)


def blob(platform: Platform, app_id: str, slug_id: str, signature: str | None) -> Path:
    """The tar.gz behind a ``blob_url``."""
    verify(platform, "slug-get", f"{app_id}/{slug_id}", signature)
    with platform.store.read() as tx:
        slug = tx.get_slug(slug_id)
    if slug.app_id != app_id:
        raise NotFoundError(f"Couldn't find that slug: {slug_id}")
    return export_tarball(platform, slug)


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


# -- uploads (Heroku's two steps: POST the slug's metadata, then PUT the tarball to blob.url) -----


@dataclass(frozen=True)
class SlugUpload:
    """A slug announced by ``POST /apps/{app}/slugs`` whose tarball is (or was) ``PUT`` to its
    blob URL. Until then its ``slug_id`` is None; afterwards releases name either id."""

    id: str
    app_id: str
    process_types: Mapping[str, str]
    commit: str | None
    checksum: str | None
    """Lowercase hex SHA-256 the tarball must have, when given."""
    stack: str
    created_at: datetime
    slug_id: str | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["process_types"] = dict(self.process_types)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SlugUpload:
        return cls(
            id=str(data["id"]),
            app_id=str(data["app_id"]),
            process_types={str(k): str(v) for k, v in data["process_types"].items()},
            commit=None if data.get("commit") is None else str(data["commit"]),
            checksum=None if data.get("checksum") is None else str(data["checksum"]),
            stack=str(data["stack"]),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            slug_id=None if data.get("slug_id") is None else str(data["slug_id"]),
        )


def _meta(platform: Platform, upload_id: str) -> Path:
    return upload_file(platform, upload_id).with_suffix(".slug.json")


def _write_meta(platform: Platform, upload: SlugUpload) -> None:
    path = _meta(platform, upload.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{uuid.uuid4().hex}.partial")
    partial.write_text(json.dumps(upload.to_json()), encoding="utf-8")
    os.replace(partial, path)


def _read_meta(platform: Platform, upload_id: str) -> SlugUpload | None:
    try:
        path = _meta(platform, upload_id)
        return SlugUpload.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (NotFoundError, OSError, ValueError, KeyError, AttributeError):
        return None


def _check_process_types(process_types: Mapping[str, str]) -> dict[str, str]:
    if not process_types:
        raise InvalidError(
            'process_types is required, e.g. {"web": "./bin/web"}', field="process_types"
        )
    checked: dict[str, str] = {}
    for ptype, command in process_types.items():
        validate_process_type(ptype)
        if not isinstance(command, str) or not command.strip() or "\x00" in command:
            raise InvalidError(f"process_types.{ptype} must be a command", field="process_types")
        checked[ptype] = command
    return checked


def create_upload(
    platform: Platform,
    account: Account,
    app_ref: str,
    *,
    process_types: Mapping[str, str],
    commit: str | None = None,
    checksum: str | None = None,
    stack: str | None = None,
) -> tuple[App, SlugUpload]:
    """Announce a slug (``POST /apps/{app}/slugs``); its tarball goes to ``upload_url`` next."""
    checked = _check_process_types(process_types)
    digest = None
    if checksum is not None:
        match = re.fullmatch(r"SHA256:([0-9a-fA-F]{64})", checksum.strip())
        if match is None:
            raise InvalidError(
                f"checksum {checksum!r} is not SHA256:<64 hex digits>", field="checksum"
            )
        digest = match[1].lower()
    if commit is not None and (len(commit) > 200 or "\n" in commit):
        raise InvalidError("commit must be one line of at most 200 characters", field="commit")
    with platform.store.transaction() as tx:
        app = app_for(tx, account, app_ref, "deploy")
        if stack is not None and stack != app.stack:
            raise InvalidError(
                f"Stack {stack!r} is not the stack of {app.name} ({app.stack})", field="stack"
            )
        slot = tx.create_source(account.id, expires_at=platform.clock.now() + SOURCE_TTL)
    upload = SlugUpload(slot.id, app.id, checked, commit, digest, app.stack, slot.created_at)
    _write_meta(platform, upload)
    return app, upload


def upload_url(platform: Platform, upload: SlugUpload) -> str:
    return signed_url(platform, f"/slug-uploads/{upload.id}", "slug-put", upload.id)


class SlugReceiver:
    """The ``PUT`` of a slug tarball (Heroku's format: the app under ``./app/``), turned into a
    SquashFS slug when it is complete."""

    def __init__(self, platform: Platform, upload: SlugUpload) -> None:
        self.platform = platform
        self.upload = upload
        self._spool = Spool(
            platform.settings.build_dir, platform.settings.build.max_slug_bytes, "slug tarball"
        )

    def write(self, chunk: bytes) -> None:
        self._spool.write(chunk)

    def abort(self) -> None:
        self._spool.abort()

    def finish(self) -> Slug:
        self._spool.close()
        try:
            return self._convert()
        finally:
            self._spool.abort()

    def _convert(self) -> Slug:
        settings = self.platform.settings
        upload = self.upload
        if upload.checksum is not None and self._spool.sha256 != upload.checksum:
            raise InvalidError(
                f"The tarball's checksum is SHA256:{self._spool.sha256}, not the SHA256:"
                f"{upload.checksum} given when the slug was created",
                field="checksum",
            )
        scratch = settings.build_dir / f"slug-{uuid.uuid4().hex}"
        try:
            scratch.mkdir(mode=0o700)
            extract_tarball(
                self._spool.path,
                scratch / "tree",
                max_bytes=settings.build.max_repo_bytes,
                max_files=settings.build.max_source_files,
                max_depth=settings.build.max_source_depth,
                what="slug tarball",
            )
            app_dir = scratch / "tree" / "app"
            if app_dir.is_symlink() or not app_dir.is_dir():
                raise InvalidError(
                    "The slug tarball must hold the app under ./app/ (Heroku's slug format), "
                    "e.g. made with `tar czf slug.tgz ./app`",
                    field="body",
                )
            image = scratch / "slug.squashfs"
            make_image(app_dir, image)
            digest, size = self.platform.slugs.put(image)
            os.utime(self.platform.slugs.path(digest))  # fresh for garbage collection
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        with self.platform.store.transaction() as tx:
            slug = tx.create_slug(
                upload.app_id,
                digest=digest,
                size=size,
                process_types=upload.process_types,
                commit=upload.commit,
                stack=upload.stack,
            )
        _write_meta(self.platform, replace(upload, slug_id=slug.id))
        return slug


def begin_slug_upload(platform: Platform, upload_id: str, signature: str | None) -> SlugReceiver:
    verify(platform, "slug-put", upload_id, signature)
    live_source(platform, upload_id)
    upload = _read_meta(platform, upload_id)
    if upload is None:
        raise NotFoundError(f"Couldn't find that slug upload: {upload_id}")
    if upload.slug_id is not None:
        raise ConflictError("This slug was uploaded already; create a new one to upload again")
    return SlugReceiver(platform, upload)


def resolve(platform: Platform, tx: Tx, app: App, ref: str) -> Slug | SlugUpload:
    """A slug of this app by its id, or by the id ``POST /apps/{app}/slugs`` answered (the slug once
    its tarball is in, else the upload still waiting for it)."""
    with contextlib.suppress(NotFoundError):
        return slug_of_app(tx, app, ref)
    upload = _read_meta(platform, ref)
    if upload is None or upload.app_id != app.id:
        raise NotFoundError(f"Couldn't find that slug: {ref}")
    return upload if upload.slug_id is None else slug_of_app(tx, app, upload.slug_id)
