"""extract_tarball: source archives are unpacked, and hostile ones are refused with their message
and nothing written outside (or left in) the target directory."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.build.archive import extract_tarball
from dockyard.errors import BuildError

Add = Callable[[tarfile.TarFile], None]
MB = 1 << 20


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> Add:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))

    return add


def _special(name: str, kind: bytes, link: str = "") -> Add:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)

    return add


def _archive(*entries: Add, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for add in entries:
            add(tar)
    return buffer.getvalue()


@pytest.fixture
def area(tmp_path: Path) -> Path:
    """The directory a build extracts into; the test checks it holds nothing afterwards."""
    path = tmp_path / "area"
    path.mkdir()
    return path


def _refused(area: Path, data: bytes, *, max_files: int = 100_000) -> str:
    with pytest.raises(BuildError) as caught:
        extract_tarball(io.BytesIO(data), area / "src", max_bytes=MB, max_files=max_files)
    assert list(area.iterdir()) == []  # no target, no spool, nothing beside them
    return caught.value.message


def test_a_gzipped_tarball_is_unpacked_with_modes_dirs_and_inner_links(area: Path) -> None:
    data = _archive(
        _special("app", tarfile.DIRTYPE),
        _file("app/Procfile", b"web: ./run\n"),
        _file("app/bin/run", b"#!/bin/sh\n", mode=0o4755),
        _special("app/current", tarfile.SYMTYPE, "bin/run"),
        _special("app/copy", tarfile.LNKTYPE, "app/Procfile"),
    )

    tree = extract_tarball(io.BytesIO(gzip.compress(data)), area / "src", max_bytes=MB)

    root = area / "src" / "app"
    assert (root / "Procfile").read_bytes() == b"web: ./run\n"
    assert (root / "bin" / "run").stat().st_mode & 0o7777 == 0o755  # no setuid bit
    assert (root / "Procfile").stat().st_mode & 0o777 == 0o644
    assert os.readlink(root / "current") == "bin/run"
    assert (root / "copy").read_bytes() == b"web: ./run\n"
    assert not (root / "copy").samefile(root / "Procfile")
    assert (tree.files, tree.bytes) == (5, 2 * 11 + 10)
    assert sorted(p.name for p in area.iterdir()) == ["src"]


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress, lambda data: data])
def test_bzip2_xz_and_plain_archives_are_read_too(
    area: Path, compress: Callable[[bytes], bytes]
) -> None:
    extract_tarball(io.BytesIO(compress(_archive(_file("a.txt", b"hi")))), area / "s", max_bytes=MB)
    assert (area / "s" / "a.txt").read_bytes() == b"hi"


def test_a_path_is_read_in_place_and_a_single_top_directory_unwrapped(
    tmp_path: Path, area: Path
) -> None:
    archive = tmp_path / "source.tar"
    archive.write_bytes(_archive(_file("repo-abc123/index.html"), _file("repo-abc123/repo-abc123")))

    extract_tarball(archive, area / "src", max_bytes=MB, unwrap=True)

    assert sorted(p.name for p in (area / "src").iterdir()) == ["index.html", "repo-abc123"]
    assert archive.exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_file("../evil"), "The archive contains the path '../evil', which leaves the tree"),
        (_file("a/../../evil"), "contains the path 'a/../../evil', which leaves the tree"),
        (_file("/etc/evil"), "contains the path '/etc/evil', which leaves the tree"),
        (
            _special("up", tarfile.SYMTYPE, "../outside"),
            "up is a symbolic link to ../outside, which points outside the archive",
        ),
        (
            _special("abs", tarfile.SYMTYPE, "/etc/passwd"),
            "abs is a symbolic link to /etc/passwd, which points outside the archive",
        ),
        (
            _special("hard", tarfile.LNKTYPE, "/etc/passwd"),
            "hard is a hard link to /etc/passwd, which is not a file stored earlier",
        ),
        (
            _special("hard", tarfile.LNKTYPE, "../../etc/passwd"),
            "hard is a hard link to ../../etc/passwd",
        ),
        (
            _special("dev/sda", tarfile.BLKTYPE),
            "dev/sda is a device node, which cannot be deployed",
        ),
        (_special("dev/null", tarfile.CHRTYPE), "dev/null is a device node"),
        (
            _special("pipe", tarfile.FIFOTYPE),
            "pipe is a fifo (named pipe), which cannot be deployed",
        ),
    ],
)
def test_entries_that_leave_the_tree_or_are_special_files_are_refused(
    area: Path, entry: Add, message: str
) -> None:
    data = _archive(_file("Procfile", b"web: x\n"), entry)
    assert message in _refused(area, data)
    assert not (area.parent / "evil").exists()


def test_links_that_escape_only_in_combination_are_refused(area: Path) -> None:
    data = _archive(
        _special("a", tarfile.SYMTYPE, "."),
        _special("b", tarfile.SYMTYPE, "a/a/../.."),  # lexically "." but really the parent
    )
    assert "b is a symbolic link to a/a/../.., which points outside the archive" in _refused(
        area, data
    )


def test_nothing_is_written_through_a_link(area: Path) -> None:
    data = _archive(
        _special("sub", tarfile.DIRTYPE), _special("l", tarfile.SYMTYPE, "sub"), _file("l/x")
    )
    assert "l/x lies under l, a symbolic link" in _refused(area, data)


def test_a_file_named_with_invalid_utf8_is_refused(area: Path) -> None:
    data = _archive(_file("caf\udce9.txt"), fmt=tarfile.GNU_FORMAT)  # the byte 0xE9 alone
    message = _refused(area, data)
    assert "a file name that is not valid UTF-8: 'caf\\xe9.txt'" in message
    assert "rename it" in message


def test_a_10000_deep_directory_is_refused(area: Path) -> None:
    data = _archive(_file("/".join(["d"] * 10_000) + "/f"))
    message = _refused(area, data)
    assert message.startswith("The archive nests directories more than 100 levels deep (d/d/d/…)")


def test_a_decompression_bomb_is_refused_on_its_declared_size_before_writing(area: Path) -> None:
    # 64 MB of zeros squeeze into ~64 KB; the limit is 1 MB.
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb") as packed,
        tarfile.open(fileobj=packed, mode="w|") as tar,
    ):
        info = tarfile.TarInfo("zeros")
        info.size = 64 * MB
        tar.addfile(info, io.BytesIO(bytes(64 * MB)))
    assert len(buffer.getvalue()) < MB

    message = _refused(area, buffer.getvalue())

    assert message.startswith("The archive is larger than 1.0M unpacked, the limit for a build")


def test_many_small_files_over_the_byte_limit_are_refused(area: Path) -> None:
    data = _archive(*(_file(f"f{i}", bytes(300 * 1024)) for i in range(4)))
    assert "larger than 1.0M unpacked" in _refused(area, data)


def test_more_files_than_the_limit_are_refused(area: Path) -> None:
    data = _archive(*(_file(f"f{i}") for i in range(11)))
    assert "holds more than 10 files and directories" in _refused(area, data, max_files=10)


def test_a_huge_metadata_header_is_refused_before_it_is_read(area: Path) -> None:
    data = _archive(_file("x" * 100, b"1"), _file("y", b"2"))
    # Forge a pax header that announces 4 GB (tarfile would read it into memory).
    forged = tarfile.TarInfo("././@PaxHeader")
    forged.type = tarfile.XHDTYPE
    forged.size = 4 << 30
    header = forged.tobuf(tarfile.USTAR_FORMAT)
    assert "4294967296-byte metadata header" in _refused(area, header + data)


def test_a_file_or_link_listed_twice_is_refused(area: Path) -> None:
    data = _archive(_file("a"), _file("a"))
    assert "contains a twice" in _refused(area, data)


def test_garbage_and_truncated_archives_are_refused(area: Path) -> None:
    assert "not a valid tar archive" in _refused(area, b"hello world" * 100)
    truncated = gzip.compress(_archive(_file("a", bytes(range(256)) * 40)))[:-200]
    assert "could not be decompressed (gzip)" in _refused(area, truncated)
    assert "is empty" in _refused(area, bytes(1024))
