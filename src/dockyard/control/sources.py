"""Sources: tarballs uploaded before a build (``POST /sources``), and the signed URLs of this API.

``POST /sources`` gives a ``put_url`` and a ``get_url``. The ``put_url`` accepts one ``PUT`` of a
tarball of at most ``[build] max_source_bytes``; the ``get_url`` serves it back and is what a build
names as its ``source_blob.url``. Both expire an hour after the upload slot was created; expired
uploads are deleted. The URLs carry an HMAC signature made with a key kept in the secrets
directory, so they work without an API key (like Heroku's pre-signed URLs) and cannot be guessed or
turned from one into the other. Signed URLs of this module also serve build and release output and
slug tarballs (``sign``/``verify`` with another purpose).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from dockyard._util.secretfile import ensure_secret_file
from dockyard.control.context import Platform
from dockyard.errors import ConflictError, InvalidError, NotFoundError
from dockyard.store.records import Account, Source

SOURCE_TTL = timedelta(hours=1)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _key(platform: Platform) -> bytes:
    return ensure_secret_file(platform.settings.secrets_dir / "url-signing-key").encode()


def sign(platform: Platform, purpose: str, object_id: str) -> str:
    """The signature that lets a URL do ``purpose`` (``source-put``, ``build-output``…) on one object."""
    message = f"{purpose}\n{object_id}".encode()
    return hmac.new(_key(platform), message, hashlib.sha256).hexdigest()


def verify(platform: Platform, purpose: str, object_id: str, signature: str | None) -> None:
    """``NotFoundError`` unless ``signature`` is right (a wrong one looks like a missing object)."""
    if not signature or not hmac.compare_digest(sign(platform, purpose, object_id), signature):
        raise NotFoundError("Couldn't find that URL: it is unknown, or its signature is wrong")


def signed_url(platform: Platform, path: str, purpose: str, object_id: str) -> str:
    return f"{platform.settings.api_url}{path}?signature={sign(platform, purpose, object_id)}"


def sources_dir(platform: Platform) -> Path:
    return platform.settings.data_dir / "sources"


def upload_file(platform: Platform, source_id: str) -> Path:
    """Where the upload of a source (or slug) slot is kept."""
    return _file(platform, source_id)


def _file(platform: Platform, source_id: str) -> Path:
    if not _UUID.match(source_id):
        raise NotFoundError(f"Couldn't find that source: {source_id}")
    return sources_dir(platform) / f"{source_id}.tgz"


def urls(platform: Platform, source: Source) -> tuple[str, str]:
    """``(get_url, put_url)`` of a source."""
    path = f"/sources/{source.id}"
    return (
        signed_url(platform, path, "source-get", source.id),
        signed_url(platform, path, "source-put", source.id),
    )


def sweep(platform: Platform) -> list[str]:
    """Delete expired uploads (records and files); returns their ids."""
    with platform.store.transaction() as tx:
        expired = tx.delete_sources_expired_before(platform.clock.now())
    for source_id in expired:
        _file(platform, source_id).unlink(missing_ok=True)
        _file(platform, source_id).with_suffix(".slug.json").unlink(missing_ok=True)
    return expired


def create_source(platform: Platform, account: Account) -> Source:
    sweep(platform)
    with platform.store.transaction() as tx:
        return tx.create_source(account.id, expires_at=platform.clock.now() + SOURCE_TTL)


def live_source(platform: Platform, source_id: str) -> Source:
    """An upload slot that has not expired (``NotFoundError`` otherwise)."""
    return _live(platform, source_id)


def _live(platform: Platform, source_id: str) -> Source:
    with platform.store.read() as tx:
        source = tx.get_source(source_id)
    if source.expires_at <= platform.clock.now():
        raise NotFoundError(f"Couldn't find that source: {source_id} (its URL has expired)")
    return source


class Spool:
    """The body of one upload, written to a new file as it arrives; ``InvalidError`` (and the file
    removed) once it is larger than ``limit`` bytes."""

    def __init__(self, directory: Path, limit: int, what: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f".{uuid.uuid4().hex}.partial"
        self.limit = limit
        self.what = what
        self.size = 0
        self._digest = hashlib.sha256()
        self._handle: BinaryIO = open(self.path, "xb")  # noqa: SIM115 (closed by close/abort)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.abort()
            raise InvalidError(
                f"The {self.what} is larger than {self.limit} bytes, the limit", field="body"
            )
        self._digest.update(chunk)
        self._handle.write(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._handle.close()

    def abort(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


class Upload:
    """The one ``PUT`` of a source tarball."""

    def __init__(self, platform: Platform, source: Source) -> None:
        self.platform = platform
        self.source = source
        self._target = _file(platform, source.id)
        self._spool = Spool(
            self._target.parent, platform.settings.build.max_source_bytes, "source tarball"
        )

    def write(self, chunk: bytes) -> None:
        self._spool.write(chunk)

    def abort(self) -> None:
        self._spool.abort()

    def finish(self) -> Source:
        self._spool.close()
        if self._target.exists():
            self._spool.abort()
            raise ConflictError(
                "This source was uploaded already; create a new one with POST /sources"
            )
        os.replace(self._spool.path, self._target)
        with self.platform.store.transaction() as tx:
            return tx.update_source(
                self.source.id, size=self._spool.size, checksum=f"SHA256:{self._spool.sha256}"
            )


def begin_upload(platform: Platform, source_id: str, signature: str | None) -> Upload:
    """Start the one ``PUT`` a ``put_url`` allows."""
    verify(platform, "source-put", source_id, signature)
    source = _live(platform, source_id)
    if source.size is not None or _file(platform, source_id).exists():
        raise ConflictError("This source was uploaded already; create a new one with POST /sources")
    return Upload(platform, source)


def uploaded_file(platform: Platform, source_id: str, signature: str | None) -> Path:
    """The tarball behind a ``get_url``."""
    verify(platform, "source-get", source_id, signature)
    _live(platform, source_id)
    path = _file(platform, source_id)
    if not path.is_file():
        raise NotFoundError(f"Source {source_id} has not been uploaded yet: PUT it to its put_url")
    return path


def local_file(platform: Platform, url: str) -> Path | None:
    """The tarball a ``get_url`` of this API names, read from disk instead of over HTTP; None for
    any other URL."""
    parts = urlsplit(url)
    api = urlsplit(platform.settings.api_url)
    match = re.fullmatch(r"/sources/([^/]+)", parts.path)
    if (parts.scheme, parts.netloc) != (api.scheme, api.netloc) or match is None:
        return None
    signature = parse_qs(parts.query).get("signature", [None])[0]
    return uploaded_file(platform, match[1], signature)
