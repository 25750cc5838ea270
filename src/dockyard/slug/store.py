"""``SlugStore``: a content-addressed directory of slug images, ``<root>/<ab>/<sha256>.squashfs``."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from dockyard.errors import NotFoundError, SlugError
from dockyard.slug.image import sha256_file
from dockyard.types import SlugDigest


class SlugStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise SlugError(f"{digest!r} is not a SHA-256 digest")
        return self.root / digest[:2] / f"{digest}.squashfs"

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, image: Path) -> tuple[SlugDigest, int]:
        """Move an image into the store; returns its digest and size. Storing the same bytes twice keeps
        one copy."""
        digest = sha256_file(image)
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = image.stat().st_size
        if target.exists():
            image.unlink()
            return digest, size
        partial = target.with_name(f".{uuid.uuid4().hex}.partial")
        shutil.move(image, partial)
        os.chmod(partial, 0o444)
        os.replace(partial, target)
        return digest, size

    def get(self, digest: str) -> Path:
        """The path of a stored slug, after checking that its content still matches its name."""
        path = self.path(digest)
        if not path.is_file():
            raise NotFoundError(f"slug {digest} is not in the slug store")
        actual = sha256_file(path)
        if actual != digest:
            raise SlugError(f"slug {digest} is corrupt: its content hashes to {actual}")
        return path

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.stem for p in self.root.glob("??/*.squashfs")}
