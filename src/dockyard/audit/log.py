"""The audit log's files, owned by the writer process (``<data dir>/audit``, mode 0700, files 0600).

- ``entries``: the entries, canonical JSON, one per line, in order (``seq`` = line number from 0);
- ``offsets``: for each entry, the offset just past its line (8 bytes, big-endian), so entry i is
  ``entries[offsets[i-1]:offsets[i]]``;
- ``hashes``: every complete-subtree hash of the Merkle tree (32 bytes each, in the order
  ``merkle.stored_hash_index`` gives), so roots and proofs cost O(log n) reads at any size;
- ``index/``: per-tenant lists of entry numbers (8 bytes each), rebuilt from the entries when behind;
- ``checkpoint`` (the newest signed checkpoint) and ``checkpoints`` (every one, one JSON line each).

Appends are batched: ``append`` writes a batch to the three files and ``fdatasync``s them before it
returns, so an entry is durable before anybody is told its number. At start the files are brought back
to their longest consistent prefix: a torn tail that was never acknowledged is cut, and hashes missing
after a crash are computed again from the entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.audit import merkle
from dockyard.audit.merkle import HASH_SIZE, Frontier, leaf_hash

OFFSET = struct.Struct(">Q")
DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Appended:
    seq: int
    leaf_hash: bytes


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise OSError(f"short read at {offset}: {len(data)} of {size} bytes")
    return data


class AuditLog:
    """An append-only Merkle log on disk. Not thread-safe: the writer process serialises access."""

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        """Open (or create) the log. ``read_only`` opens an existing one without changing a byte
        (for verification): a torn tail is left alone and not counted."""
        self.directory = directory
        self.read_only = read_only
        if read_only:
            flags = os.O_RDONLY | os.O_CLOEXEC
            self._entries = os.open(directory / "entries", flags)
            self._offsets = os.open(directory / "offsets", flags)
            self._hashes = os.open(directory / "hashes", flags)
        else:
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            directory.chmod(DIR_MODE)
            self._entries = _open(directory / "entries")
            self._offsets = _open(directory / "offsets")
            self._hashes = _open(directory / "hashes")
        self.index = TenantIndex(directory / "index", read_only=read_only)
        self.size = 0
        self.end = 0
        """Byte length of the committed entries."""
        self.frontier = Frontier()
        if read_only:
            self._measure()
        else:
            self._recover()

    def close(self) -> None:
        if not self.read_only:
            self.index.flush()
        for fd in (self._entries, self._offsets, self._hashes):
            os.close(fd)

    def _measure(self) -> None:
        data_length = os.fstat(self._entries).st_size
        count = os.fstat(self._offsets).st_size // 8
        while count and self.offset(count) > data_length:
            count -= 1
        stored = os.fstat(self._hashes).st_size // HASH_SIZE
        self.size = min(count, merkle.leaves_covered(stored))
        self.end = self.offset(self.size) if self.size else 0
        self.frontier = Frontier.from_source(self, self.size)

    # --- writing -------------------------------------------------------------------------------

    def append(
        self, entries: Sequence[bytes], keys: Sequence[Iterable[str]] = ()
    ) -> list[Appended]:
        """Append ``entries`` (canonical JSON without newline) durably; ``keys`` name the tenant streams
        each one belongs to (``account:<id>``, ``app:<id>``)."""
        if self.read_only:
            raise PermissionError(f"{self.directory} is open read-only")
        if not entries:
            return []
        data = bytearray()
        offsets = bytearray()
        hashes = bytearray()
        result: list[Appended] = []
        frontier = Frontier(self.frontier.size, self.frontier.peaks)
        end = self.end
        for entry in entries:
            if b"\n" in entry:
                raise ValueError("an audit entry is one line")
            line = entry + b"\n"
            data += line
            end += len(line)
            offsets += OFFSET.pack(end)
            leaf = leaf_hash(entry)
            hashes += b"".join(frontier.append(leaf))
            result.append(Appended(frontier.size - 1, leaf))
        try:
            for fd, blob in (
                (self._entries, data),
                (self._offsets, offsets),
                (self._hashes, hashes),
            ):
                _write_all(fd, bytes(blob))
            for fd in (self._entries, self._offsets, self._hashes):
                os.fdatasync(fd)
        except OSError:
            self._truncate_to_committed()  # e.g. a full disk: leave no half batch behind
            raise
        first = self.size
        self.size, self.end, self.frontier = frontier.size, end, frontier
        for position, entry_keys in enumerate(keys):
            self.index.add(first + position, entry_keys)
        self.index.covered = self.size
        return result

    def _truncate_to_committed(self) -> None:
        os.ftruncate(self._entries, self.end)
        os.ftruncate(self._offsets, self.size * 8)
        os.ftruncate(self._hashes, merkle.stored_hash_count(self.size) * HASH_SIZE)

    # --- reading -------------------------------------------------------------------------------

    def offset(self, seq: int) -> int:
        """Where entry ``seq`` starts in ``entries``."""
        if seq == 0:
            return 0
        return int(OFFSET.unpack(_read_at(self._offsets, 8, (seq - 1) * 8))[0])

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start`` to ``end - 1`` (without their newlines)."""
        end = min(end, self.size)
        if start >= end:
            return []
        first, last = self.offset(start), self.offset(end)
        blob = _read_at(self._entries, last - first, first)
        lines = blob.split(b"\n")
        return lines[:-1]

    def entry(self, seq: int) -> bytes:
        if not 0 <= seq < self.size:
            raise IndexError(seq)
        return self.entries(seq, seq + 1)[0]

    def iter_entries(self, start: int = 0, chunk: int = 4096) -> Iterator[bytes]:
        for begin in range(start, self.size, chunk):
            yield from self.entries(begin, begin + chunk)

    def stored(self, level: int, index: int) -> bytes:
        position = merkle.stored_hash_index(level, index)
        return _read_at(self._hashes, HASH_SIZE, position * HASH_SIZE)

    def leaf_hash(self, seq: int) -> bytes:
        return self.stored(0, seq)

    def root(self, size: int | None = None) -> bytes:
        frontier = self.frontier  # replaced whole by append: a consistent snapshot
        size = frontier.size if size is None else size
        if size == frontier.size:
            return frontier.root()
        self._check_size(size)
        return merkle.tree_root(self, size)

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(self, seq, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._check_size(second)
        return merkle.consistency_proof(self, first, second)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"the log has {self.size} entries, not {size}")

    # --- recovery ------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Cut every file back to the longest prefix all of them agree on, computing missing hashes."""
        data_length = os.fstat(self._entries).st_size
        count = os.fstat(self._offsets).st_size // 8
        # The newest offsets may point past a torn entries file: drop them.
        while count and self.offset(count) > data_length:
            count -= 1
        end = self.offset(count) if count else 0
        if count and _read_at(self._entries, 1, end - 1) != b"\n":
            raise OSError(f"{self.directory}/entries does not end an entry where offsets say")
        os.ftruncate(self._entries, end)
        os.ftruncate(self._offsets, count * 8)
        stored = os.fstat(self._hashes).st_size // HASH_SIZE
        hashed = min(merkle.leaves_covered(stored), count)
        os.ftruncate(self._hashes, merkle.stored_hash_count(hashed) * HASH_SIZE)
        self.size, self.end = hashed, self.offset(hashed) if hashed else 0
        self.frontier = Frontier.from_source(self, hashed)
        if hashed < count:  # hashes lost in a crash: compute them again from the entries
            missing = self._raw_entries(hashed, count)
            hashes = bytearray()
            for entry in missing:
                hashes += b"".join(self.frontier.append(leaf_hash(entry)))
            _write_all(self._hashes, bytes(hashes))
            os.fdatasync(self._hashes)
            self.size, self.end = count, end
        for fd in (self._entries, self._offsets, self._hashes):
            os.fsync(fd)
        self.index.catch_up(self)

    def _raw_entries(self, start: int, end: int) -> list[bytes]:
        first = self.offset(start)
        last = self.offset(end)
        return _read_at(self._entries, last - first, first).split(b"\n")[:-1]


def entry_keys(entry: dict[str, object]) -> list[str]:
    """The tenant streams an entry belongs to: its account, its acting account, its app."""
    keys: list[str] = []
    actor = entry.get("actor")
    if isinstance(entry.get("account"), str):
        keys.append(f"account:{entry['account']}")
    if isinstance(actor, dict) and actor.get("type") == "account" and actor.get("id"):
        keys.append(f"account:{actor['id']}")
    if isinstance(entry.get("app"), str):
        keys.append(f"app:{entry['app']}")
    return sorted(set(keys))


class TenantIndex:
    """Entry numbers per tenant stream, one file of 8-byte numbers per stream (named by a hash of the
    stream's key). Derived data: ``covered`` entries are indexed durably; at start the rest is indexed
    again from the log (numbers already present are not repeated)."""

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        self.directory = directory
        if not read_only:
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._pending: dict[str, list[int]] = {}
        self._position_file = directory / "position"
        self.durable = self._read_position()
        self.covered = self.durable

    def _read_position(self) -> int:
        try:
            return int(self._position_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()[:40]

    def add(self, seq: int, keys: Iterable[str]) -> None:
        for key in keys:
            self._pending.setdefault(key, []).append(seq)
        if sum(len(v) for v in self._pending.values()) > 50_000:
            self.flush()

    def flush(self) -> None:
        """Write pending numbers, sync them, then record how far the index is durable."""
        pending, self._pending = self._pending, {}
        for key, seqs in pending.items():
            path = self.path(key)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
            try:
                last = _last_seq(fd)
                fresh = [s for s in seqs if s > last]
                if fresh:
                    os.write(fd, b"".join(OFFSET.pack(s) for s in fresh))
                    os.fdatasync(fd)
            finally:
                os.close(fd)
        if self.covered != self.durable:
            temporary = self._position_file.with_suffix(".tmp")
            temporary.write_text(str(self.covered))
            os.chmod(temporary, FILE_MODE)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            temporary.replace(self._position_file)
            self.durable = self.covered

    def catch_up(self, log: AuditLog) -> None:
        start = min(self.durable, log.size)
        for seq, entry in enumerate(log.iter_entries(start), start):
            self.add(seq, entry_keys(json.loads(entry)))
        self.covered = log.size
        self.flush()

    def seqs_before(self, key: str, before: int, limit: int) -> list[int]:
        """Up to ``limit`` numbers of ``key``'s stream below ``before``, newest first (durable and
        pending ones)."""
        found: list[int] = sorted(
            (s for s in self._pending.get(key, ()) if s < before), reverse=True
        )[:limit]
        if len(found) >= limit:
            return found
        try:
            fd = os.open(self.path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return found
        try:
            count = os.fstat(fd).st_size // 8
            low, high = 0, count  # first position whose number is >= before
            while low < high:
                middle = (low + high) // 2
                if OFFSET.unpack(_read_at(fd, 8, middle * 8))[0] < before:
                    low = middle + 1
                else:
                    high = middle
            want = limit - len(found)
            start = max(0, low - want)
            blob = _read_at(fd, (low - start) * 8, start * 8)
        finally:
            os.close(fd)
        older = [OFFSET.unpack_from(blob, i * 8)[0] for i in range(low - start)]
        seen = set(found)
        found.extend(s for s in reversed(older) if s not in seen)
        return found[:limit]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_seq(fd: int) -> int:
    size = os.fstat(fd).st_size // 8
    if size == 0:
        return -1
    return int(OFFSET.unpack(_read_at(fd, 8, (size - 1) * 8))[0])
