"""SlugMounter: read-only loop mounts as root, read-only unpacked copies otherwise."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import NotFoundError, SlugError
from dockyard.slug.image import make_image
from dockyard.slug.mount import SlugMounter, mount_points
from dockyard.slug.store import SlugStore

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="loop mounts need root; run the tests as root to cover them"
)


@pytest.fixture
def store(tmp_path: Path) -> SlugStore:
    return SlugStore(tmp_path / "slugs")


@pytest.fixture
def digest(tmp_path: Path, store: SlugStore) -> str:
    source = tmp_path / "source"
    (source / "bin").mkdir(parents=True)
    (source / "Procfile").write_text("web: ./bin/serve\n")
    serve = source / "bin" / "serve"
    serve.write_text("#!/bin/sh\necho hello\n")
    serve.chmod(0o4755)  # set-user-id: must not survive into a dyno
    image = tmp_path / "slug.squashfs"
    make_image(source, image)
    return store.put(image)[0]


def _cleanup(mounter: SlugMounter) -> None:
    for digest in mounter.mounted():
        mounter.unmount(digest)


@pytest.fixture
def loop_mounter(tmp_path: Path, store: SlugStore) -> Iterator[SlugMounter]:
    mounter = SlugMounter(tmp_path / "mounts", store, loop=True)
    yield mounter
    _cleanup(mounter)


@pytest.fixture
def unpack_mounter(tmp_path: Path, store: SlugStore) -> Iterator[SlugMounter]:
    mounter = SlugMounter(tmp_path / "unpacked", store, loop=False)
    yield mounter
    _cleanup(mounter)


def _mountinfo_options(path: Path) -> list[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] == str(path.resolve()):
            return fields[5].split(",")
    return []


@needs_root
def test_loop_mount_shows_the_slug_read_only_nosuid_nodev(
    loop_mounter: SlugMounter, digest: str
) -> None:
    path = loop_mounter.mount(digest)
    assert path == loop_mounter.root / digest
    assert (path / "Procfile").read_text() == "web: ./bin/serve\n"
    options = _mountinfo_options(path)
    assert {"ro", "nosuid", "nodev"} <= set(options)
    with pytest.raises(OSError) as info:
        (path / "new-file").write_text("x")
    assert info.value.errno == errno.EROFS


@needs_root
def test_mounting_twice_returns_the_same_mount(loop_mounter: SlugMounter, digest: str) -> None:
    first = loop_mounter.mount(digest)
    second = loop_mounter.mount(digest)
    assert first == second
    assert sum(1 for p in mount_points() if p == first.resolve()) == 1
    assert loop_mounter.mounted() == {digest}


@needs_root
def test_a_new_mounter_finds_existing_mounts(
    loop_mounter: SlugMounter, store: SlugStore, digest: str
) -> None:
    path = loop_mounter.mount(digest)
    again = SlugMounter(loop_mounter.root, store, loop=True)
    assert again.mounted() == {digest}
    assert again.mount(digest) == path


@needs_root
def test_unmount_removes_the_mount_and_its_directory(
    loop_mounter: SlugMounter, digest: str
) -> None:
    path = loop_mounter.mount(digest)
    loop_mounter.unmount(digest)
    assert path.resolve() not in mount_points()
    assert not path.exists()
    assert loop_mounter.mounted() == set()
    loop_mounter.unmount(digest)  # unknown: ignored


@needs_root
def test_a_corrupt_slug_is_refused_before_mounting(
    loop_mounter: SlugMounter, store: SlugStore, digest: str
) -> None:
    image = store.path(digest)
    image.chmod(0o644)
    with image.open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(SlugError, match="corrupt"):
        loop_mounter.mount(digest)
    assert loop_mounter.mounted() == set()
    assert not (loop_mounter.root / digest).exists()


def test_a_missing_slug_is_not_found(unpack_mounter: SlugMounter) -> None:
    with pytest.raises(NotFoundError):
        unpack_mounter.mount("0" * 64)


def test_a_malformed_digest_is_refused(unpack_mounter: SlugMounter) -> None:
    with pytest.raises(SlugError, match="not a SHA-256"):
        unpack_mounter.mount("../../etc")


def test_unpacked_copy_has_no_write_or_setuid_bits(
    unpack_mounter: SlugMounter, digest: str
) -> None:
    path = unpack_mounter.mount(digest)
    assert (path / "Procfile").read_text() == "web: ./bin/serve\n"
    for entry in [path, *path.rglob("*")]:
        mode = entry.lstat().st_mode
        assert mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0, entry
        assert mode & (stat.S_ISUID | stat.S_ISGID) == 0, entry
    assert os.access(path / "bin" / "serve", os.X_OK)
    assert unpack_mounter.mount(digest) == path
    assert unpack_mounter.mounted() == {digest}
    assert [p.name for p in unpack_mounter.root.iterdir()] == [digest]  # no partial left


def test_unmount_deletes_an_unpacked_copy(unpack_mounter: SlugMounter, digest: str) -> None:
    path = unpack_mounter.mount(digest)
    unpack_mounter.unmount(digest)
    assert not path.exists()
    assert unpack_mounter.mounted() == set()


def test_corrupt_slug_is_refused_before_unpacking(
    unpack_mounter: SlugMounter, store: SlugStore, digest: str
) -> None:
    image = store.path(digest)
    image.chmod(0o644)
    image.write_bytes(b"\0" + image.read_bytes()[1:])
    with pytest.raises(SlugError, match="corrupt"):
        unpack_mounter.mount(digest)
    assert unpack_mounter.mounted() == set()
