"""Safe extraction of source archives: git exports and tarballs handed to the Build API.

``extract_tarball`` unpacks a tar archive (plain, gzip, bzip2 or xz) into a new directory and
refuses, with a ``BuildError`` that names the entry and what to do, anything that could reach
outside that directory or exhaust the machine:

- absolute paths, ``..`` components, file names that are not valid UTF-8, paths deeper than
  ``max_depth`` or longer than the file system allows;
- symbolic links that resolve outside the tree (checked on the finished tree, so chains of links
  cannot combine into an escape), entries written through a symbolic link, hard links to anything
  but a regular file extracted before them;
- device nodes, fifos, sockets and sparse files;
- more than ``max_files`` entries; more than ``max_bytes`` of file content, checked on the sizes the
  archive declares before a file is written and on the bytes actually written; oversized metadata
  headers (pax and GNU long names), checked before ``tarfile`` reads them into memory; and a
  decompressed stream longer than the content allows.

The decompressed archive is spooled next to the target directory and removed afterwards; on any
error the target directory is removed too, so nothing is left behind.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.build.output import human_size
from dockyard.errors import BuildError

CHUNK = 1 << 20
MAX_METADATA_BYTES = 1 << 20
"""Largest pax or GNU long-name header accepted (real ones are a few hundred bytes)."""
MAX_PATH_BYTES = 4000
MAX_NAME_BYTES = 255
HEADER_ALLOWANCE = 2048
"""Decompressed bytes allowed per entry on top of the file content (headers and padding)."""
_METADATA_TYPES = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}
_PAX_SIZE = re.compile(rb"(?:^|\n)\d+ size=(\d+)\n")


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ExtractedTree:
    files: int
    """Entries written: files, directories and links."""
    bytes: int
    """Bytes of file content written."""


def _readable(name: str) -> str:
    """A file name for a message, with undecodable bytes shown as escapes."""
    raw = name.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "backslashreplace")
    return text if len(text) <= 200 else text[:100] + "…" + text[-60:]


class _Extraction:
    def __init__(
        self, target: Path, what: str, max_bytes: int, max_files: int, max_depth: int
    ) -> None:
        self.target = target
        self.what = what
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.max_depth = max_depth
        self.declared = 0
        self.written = 0
        self.entries = 0
        self.links: dict[str, str] = {}
        self.files: set[str] = set()
        self.dirs: set[str] = {""}
        self.pending_size: int | None = None
        self.pax_type = b""

    # Messages
    def too_large(self) -> BuildError:
        return BuildError(
            f"The {self.what} is larger than {human_size(self.max_bytes)} unpacked, the limit for "
            "a build — remove large files from it (keep data in an add-on or object storage)"
        )

    def too_many(self) -> BuildError:
        return BuildError(
            f"The {self.what} holds more than {self.max_files} files and directories, the limit "
            "for a build — remove generated or vendored files from it"
        )

    def leaves(self, name: str) -> BuildError:
        return BuildError(
            f"The {self.what} contains the path '{_readable(name)}', which leaves the tree — "
            f"only relative paths inside the {self.what} can be deployed"
        )

    def link_leaves(self, name: str, link: str) -> BuildError:
        return BuildError(
            f"{_readable(name)} is a symbolic link to {_readable(link)}, which points outside the "
            f"{self.what} — replace it with a relative link inside the {self.what} or a copy of "
            "the file"
        )

    # The scan of raw headers, as the decompressed stream passes
    def header(self, block: bytes) -> tuple[int, int]:
        """Read one 512-byte header; returns ``(metadata bytes to read, data bytes to skip)``,
        or ``(-1, 0)`` at the end of the archive."""
        if block == tarfile.NUL * tarfile.BLOCKSIZE:
            return -1, 0
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise BuildError(
                f"The {self.what} is not a valid tar archive (plain, gzip, bzip2 or xz): {exc}"
            ) from exc
        if info.type in _METADATA_TYPES:
            if info.size > MAX_METADATA_BYTES:
                raise BuildError(
                    f"The {self.what} has a {info.size}-byte metadata header, far more than any "
                    "real archive needs — create the archive again with tar or git archive"
                )
            self.pax_type = info.type
            return info.size, 0
        size = info.size if self.pending_size is None else self.pending_size
        self.pending_size = None
        return 0, _padded(self.count(info, size))

    def metadata(self, data: bytes) -> int:
        """Read a pax or GNU long-name header's data; returns the padding bytes to skip."""
        match = _PAX_SIZE.search(data) if self.pax_type == tarfile.XHDTYPE else None
        self.pending_size = int(match.group(1)) if match else None
        return _padded(len(data)) - len(data)

    def count(self, info: tarfile.TarInfo, size: int) -> int:
        """Count one entry of the pre-scan; returns the size of its data in the archive."""
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise BuildError(
                f"{_readable(info.name)} is a sparse file, which cannot be deployed — "
                "create the archive without --sparse"
            )
        self.entries += 1
        if self.entries > self.max_files:
            raise self.too_many()
        if info.type in tarfile.REGULAR_TYPES:
            self.declared += size
            if self.declared > self.max_bytes:
                raise self.too_large()
            return size
        return 0 if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE) else size

    # Extraction proper
    def path_of(self, member: tarfile.TarInfo) -> tuple[str, list[str]]:
        name = member.name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BuildError(
                f"The {self.what} contains a file name that is not valid UTF-8: "
                f"'{_readable(name)}' — rename it using UTF-8 characters only"
            ) from exc
        if name.startswith("/"):
            raise self.leaves(name)
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.leaves(name)
        if len(parts) > self.max_depth:
            raise BuildError(
                f"The {self.what} nests directories more than {self.max_depth} levels deep "
                f"({_readable('/'.join(parts[:3]))}/…) — flatten the tree"
            )
        relative = "/".join(parts)
        if len(relative.encode()) > MAX_PATH_BYTES or any(
            len(p.encode()) > MAX_NAME_BYTES for p in parts
        ):
            raise BuildError(
                f"The {self.what} contains a path or file name too long for the file system: "
                f"'{_readable(relative)}'"
            )
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in self.links:
                raise BuildError(
                    f"{_readable(relative)} lies under {_readable(prefix)}, a symbolic link — an "
                    f"archive may not write through links; store the files in the {self.what} "
                    "itself"
                )
            if prefix in self.files:
                raise BuildError(
                    f"{_readable(relative)} lies under {_readable(prefix)}, which is a file"
                )
        return relative, parts

    def extract(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            relative, parts = self.path_of(member)
            if not parts:
                continue  # the archive's root "./"
            if relative in self.files or relative in self.links:
                raise BuildError(f"The {self.what} contains {_readable(relative)} twice")
            full = self.target / relative
            if member.isdir():
                if relative not in self.dirs:
                    full.mkdir(parents=True, exist_ok=True, mode=0o755)
                    self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
                continue
            if relative in self.dirs:
                raise BuildError(f"The {self.what} contains {_readable(relative)} twice")
            if member.issym():
                self.symlink(member, relative, parts, full)
            elif member.islnk():
                self.hardlink(member, relative, full)
            elif member.isreg():
                self.parent(parts, full)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - regular members always have data
                    raise BuildError(f"{_readable(relative)} has no content")
                with source:
                    self.write(source, full, member.size, member.mode)
                self.files.add(relative)
            else:
                raise BuildError(
                    f"{_readable(relative)} is a {_kind(member)}, which cannot be deployed — only "
                    "regular files, directories and symbolic links can"
                )
            if member.mtime > 0:
                os.utime(full, (member.mtime, member.mtime), follow_symlinks=False)

    def parent(self, parts: list[str], full: Path) -> None:
        parent = "/".join(parts[:-1])
        if parent not in self.dirs:
            full.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))

    def symlink(self, member: tarfile.TarInfo, relative: str, parts: list[str], full: Path) -> None:
        link = member.linkname
        try:
            link.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self.link_leaves(relative, link) from exc
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), link))
        if not link or link.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise self.link_leaves(relative, link)
        self.parent(parts, full)
        os.symlink(link, full)
        self.links[relative] = link

    def hardlink(self, member: tarfile.TarInfo, relative: str, full: Path) -> None:
        source = "/".join(p for p in member.linkname.split("/") if p not in ("", "."))
        if source not in self.files:
            raise BuildError(
                f"{_readable(relative)} is a hard link to {_readable(member.linkname)}, which is "
                f"not a file stored earlier in the {self.what} — store a copy of the file instead"
            )
        self.parent(relative.split("/"), full)
        with open(self.target / source, "rb") as handle:
            info = os.fstat(handle.fileno())
            self.write(handle, full, info.st_size, info.st_mode)
        self.files.add(relative)

    def write(self, source: _Reader, full: Path, declared: int, mode: int) -> None:
        if self.written + declared > self.max_bytes:
            raise self.too_large()
        perms = 0o755 if mode & 0o111 else 0o644
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, perms)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise self.too_large()
                out.write(chunk)

    def check_links(self) -> None:
        """Every link of the finished tree must resolve inside it: a link accepted on its own
        can escape through another one (``a -> .`` then ``b -> a/a/../..``)."""
        root = os.path.realpath(self.target)
        for relative, link in self.links.items():
            resolved = os.path.realpath(self.target / relative)
            if resolved != root and not resolved.startswith(root + os.sep):
                raise self.link_leaves(relative, link)


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "device node"
    if member.isfifo():
        return "fifo (named pipe)"
    return f"special file (tar type {member.type!r})"


def _opener(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise BuildError(
            "The archive is compressed with zstd, which is not supported — use gzip (tar czf)"
        )
    return "tar"


def _gunzip(head: bytes, source: _Reader) -> Iterator[bytes]:
    pending = head
    decompressor = zlib.decompressobj(wbits=31)
    while True:
        if not pending:
            pending = source.read(CHUNK)
            if not pending:
                if not decompressor.eof:
                    raise EOFError("the compressed stream ends early")
                return
        yield decompressor.decompress(pending, CHUNK)
        pending = decompressor.unconsumed_tail
        if decompressor.eof:  # another gzip member may follow; trailing padding is ignored
            pending = decompressor.unused_data or source.read(CHUNK)
            if not pending.startswith(b"\x1f\x8b"):
                return
            decompressor = zlib.decompressobj(wbits=31)


def _unpack(
    head: bytes, source: _Reader, decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor
) -> Iterator[bytes]:
    pending = head
    while not decompressor.eof:
        if decompressor.needs_input and not pending:
            pending = source.read(CHUNK)
            if not pending:
                raise EOFError("the compressed stream ends early")
        yield decompressor.decompress(pending, CHUNK)
        pending = b""


def _chunks(head: bytes, source: _Reader, kind: str) -> Iterator[bytes]:
    """The decompressed stream in chunks of at most ``CHUNK`` bytes (so a bomb never takes more
    memory than one chunk)."""
    if kind == "gzip":
        yield from _gunzip(head, source)
    elif kind == "bzip2":
        yield from _unpack(head, source, bz2.BZ2Decompressor())
    elif kind == "xz":
        yield from _unpack(head, source, lzma.LZMADecompressor())
    else:
        yield head
        while chunk := source.read(CHUNK):
            yield chunk


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class _Scanner:
    """Follows the tar structure of a stream fed in chunks, so that declared sizes are checked
    before the data they announce is written anywhere."""

    def __init__(self, extraction: _Extraction) -> None:
        self.extraction = extraction
        self.skip = 0
        self.buffer = b""
        self.need = tarfile.BLOCKSIZE
        self.in_metadata = False
        self.done = False

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.done:
            if self.skip:
                step = min(self.skip, len(view))
                self.skip -= step
                view = view[step:]
                continue
            step = min(self.need - len(self.buffer), len(view))
            self.buffer += bytes(view[:step])
            view = view[step:]
            if len(self.buffer) < self.need:
                return
            block, self.buffer = self.buffer, b""
            if self.in_metadata:
                self.skip = self.extraction.metadata(block)
                self.in_metadata = False
                self.need = tarfile.BLOCKSIZE
                continue
            metadata, self.skip = self.extraction.header(block)
            if metadata < 0:
                self.done = True
            elif metadata > 0:
                self.in_metadata = True
                self.need = metadata

    def finish(self) -> None:
        if self.extraction.entries == 0:
            raise BuildError(f"The {self.extraction.what} is empty: it holds no files")
        if not self.done and (self.buffer or self.skip or self.in_metadata):
            raise BuildError(f"The {self.extraction.what} is truncated: it ends inside a file")


def _scan(source: _Reader, spool: Path | None, limit: int, extraction: _Extraction) -> None:
    """Decompress ``source`` through the scanner, into ``spool`` when given, stopping at the end
    of the archive, at the first refused header, or once more than ``limit`` bytes come out."""
    what = extraction.what
    head = source.read(CHUNK)
    kind = _opener(head)
    scanner = _Scanner(extraction)
    total = 0
    try:
        with contextlib.ExitStack() as stack:
            out = None if spool is None else stack.enter_context(open(spool, "xb", opener=_private))
            for chunk in _chunks(head, source, kind):
                total += len(chunk)
                if total > limit:
                    raise extraction.too_large()
                scanner.feed(chunk)
                if out is not None:
                    out.write(chunk)
                if scanner.done:
                    break
    except (EOFError, zlib.error, lzma.LZMAError) as exc:
        raise BuildError(f"The {what} could not be decompressed ({kind}): {exc}") from exc
    except OSError as exc:  # bz2 reports corrupt data as OSError
        raise BuildError(f"The {what} could not be decompressed ({kind}): {exc}") from exc
    scanner.finish()


def extract_tarball(
    source: _Reader | Path,
    target: Path,
    *,
    max_bytes: int,
    max_files: int = 100_000,
    max_depth: int = 100,
    what: str = "archive",
    unwrap: bool = False,
) -> ExtractedTree:
    """Unpack the tar archive ``source`` (a path or a readable binary file object; plain, gzip,
    bzip2 or xz) into ``target``, which is created (mode 0700) and must not exist.

    Raises ``BuildError`` naming the offending entry for anything unsafe (see the module
    docstring); ``target`` does not exist afterwards then. ``what`` names the source in messages
    ("archive", "repository"). With ``unwrap``, an archive holding a single top-level directory
    (as GitHub's tarballs do) has that directory's content moved up into ``target``."""
    target.mkdir(mode=0o700)  # other users (builds of other apps) never see an unpacked source
    spool = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tar")
    extraction = _Extraction(target, what, max_bytes, max_files, max_depth)
    limit = max_bytes + (max_files + 2) * HEADER_ALLOWANCE
    try:
        tar_path = spool
        if isinstance(source, Path):
            with open(source, "rb") as handle:
                if _opener(handle.read(6)) == "tar":
                    tar_path = source  # read in place, no copy
                handle.seek(0)
                _scan(handle, None if tar_path == source else spool, limit, extraction)
        else:
            _scan(source, spool, limit, extraction)
        try:
            with tarfile.open(
                tar_path, mode="r:", encoding="utf-8", errors="surrogateescape"
            ) as tar:
                extraction.extract(tar)
        except tarfile.TarError as exc:
            raise BuildError(f"The {what} is not a valid tar archive: {exc}") from exc
        except OSError as exc:
            raise BuildError(
                f"The {what} could not be unpacked: {exc.strerror or exc} ({exc.filename})"
            ) from exc
        extraction.check_links()
        if unwrap:
            _unwrap(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        spool.unlink(missing_ok=True)
    return ExtractedTree(files=extraction.entries, bytes=extraction.written)


def _unwrap(target: Path) -> None:
    entries = list(target.iterdir())
    if len(entries) != 1 or entries[0].is_symlink() or not entries[0].is_dir():
        return
    inner = target / f".unwrap-{uuid.uuid4().hex}"
    entries[0].rename(inner)
    for child in inner.iterdir():
        child.rename(target / child.name)
    inner.rmdir()
