"""``SlugMounter``: one read-only copy of each slug on this host, shared by every dyno of that slug.

As root a slug is a read-only loop mount of its SquashFS image (``ro,loop,nodev,nosuid``) at
``<root>/<digest>``; without root it is unpacked once with ``unsquashfs`` and its tree made
read-only (and stripped of set-user-id bits, like ``nosuid``). Before a slug is mounted its SHA-256
is checked against its name (``SlugStore.get``), the idea behind Heroku's R17 checksum error: a
corrupt slug never runs.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import threading
import uuid
from pathlib import Path

from dockyard._util import proc
from dockyard.errors import CommandError, SlugError
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
MOUNT_OPTIONS = "ro,loop,nodev,nosuid"


def mount_points() -> set[Path]:
    """Every mount point of this process's mount namespace, from ``/proc/self/mountinfo``."""
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return set()
    points = set()
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.add(Path(_OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), fields[4])))
    return points


def _is_root() -> bool:
    return os.geteuid() == 0


class SlugMounter:
    def __init__(self, root: Path, slugs: SlugStore, *, loop: bool | None = None) -> None:
        """``loop``: loop mounts (default as root) or unpacked copies (default otherwise)."""
        self.root = root
        self.slugs = slugs
        self.loop = _is_root() if loop is None else loop
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise SlugError(f"{digest!r} is not a SHA-256 digest")
        return self.root / digest

    def mount(self, digest: str) -> Path:
        """A read-only directory with the slug's content; the same path until ``unmount``."""
        target = self.path(digest)
        with self._lock:
            if self.loop:
                if target.resolve() in mount_points():
                    return target
                image = self.slugs.get(digest)
                self._loop_mount(image, target)
            else:
                if target.is_dir():
                    return target
                image = self.slugs.get(digest)
                self._unpack(image, target)
        return target

    def unmount(self, digest: str) -> None:
        """Drop the slug's mount or unpacked copy; unknown digests are ignored."""
        target = self.path(digest)
        with self._lock:
            if target.resolve() in mount_points():
                try:
                    proc.run(["umount", target])
                except CommandError as exc:
                    raise SlugError(f"could not unmount slug {digest}: {exc.message}") from exc
                target.rmdir()
            elif target.is_dir():
                _remove_tree(target)

    def mounted(self) -> set[str]:
        """Digests of the slugs mounted (or unpacked) under ``root``."""
        if not self.root.is_dir():
            return set()
        points = mount_points()
        found = set()
        for child in self.root.iterdir():
            if not _DIGEST.match(child.name) or not child.is_dir():
                continue
            if child.resolve() in points or not self.loop:
                found.add(child.name)
        return found

    def _loop_mount(self, image: Path, target: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target.mkdir(exist_ok=True)
        try:
            proc.run(["mount", "-t", "squashfs", "-o", MOUNT_OPTIONS, image, target])
        except CommandError as exc:
            target.rmdir()
            raise SlugError(f"could not mount slug {image.stem}: {exc.message}") from exc

    def _unpack(self, image: Path, target: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / f".{target.name}.{uuid.uuid4().hex}.partial"
        try:
            extract_image(image, partial)
            _make_read_only(partial)
            os.replace(partial, target)
        finally:
            if partial.exists():
                _remove_tree(partial)


def _make_read_only(tree: Path) -> None:
    """Remove every write and set-id bit below ``tree``, deepest first."""
    drop = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID
    for dirpath, dirnames, filenames in os.walk(tree, topdown=False):
        for name in [*filenames, *dirnames]:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~drop)
    os.chmod(tree, stat.S_IMODE(os.lstat(tree).st_mode) & ~drop)


def _remove_tree(tree: Path) -> None:
    """Delete a tree made read-only by ``_make_read_only`` (unlinking needs write bits)."""
    for dirpath, _, _ in os.walk(tree):  # lists each directory before we reach its children
        os.chmod(dirpath, 0o700)
    shutil.rmtree(tree)
