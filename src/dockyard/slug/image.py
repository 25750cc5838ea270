"""Making and unpacking SquashFS slug images with the ``squashfs-tools`` binaries."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dockyard._util import proc
from dockyard.errors import CommandError, SlugError
from dockyard.types import SlugDigest

_CHUNK = 1 << 20


def sha256_file(path: Path) -> SlugDigest:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return SlugDigest(digest.hexdigest())


def make_image(source_dir: Path, image: Path) -> None:
    """Pack ``source_dir`` into a SquashFS image owned by root, with reproducible timestamps."""
    try:
        proc.run(
            [
                "mksquashfs",
                source_dir,
                image,
                "-noappend",
                "-quiet",
                "-no-progress",
                "-all-root",
                "-no-xattrs",
                "-comp",
                "zstd",
                "-Xcompression-level",
                "3",
                "-mkfs-time",
                "0",
                "-all-time",
                "0",
            ]
        )
    except CommandError as exc:
        raise SlugError(f"could not create the slug image: {exc.message}") from exc


def extract_image(image: Path, target: Path) -> None:
    """Unpack an image into ``target`` (which must not exist yet)."""
    try:
        proc.run(["unsquashfs", "-no-progress", "-quiet", "-no-xattrs", "-d", target, image])
    except CommandError as exc:
        raise SlugError(f"could not unpack slug {image.name}: {exc.message}") from exc
