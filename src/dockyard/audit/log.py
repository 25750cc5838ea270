"""The audit log's files, owned by the writer process (``<data dir>/audit``, mode 0700, files 0600).

- ``entries``: the entries, canonical JSON, one per line, in order (``seq`` = line number from 0);
- ``offsets``: for each entry, the offset just past its line (8 bytes, big-endian), so entry i is
  ``entries[offsets[i-1]:offsets[i]]``;
- ``hashes``: every complete-subtree hash of the Merkle tree (32 bytes each, in the order
  ``merkle.stored_hash_index`` gives), so roots and proofs cost O(log n) reads at any size;
- ``index.db``: per-tenant lists of entry numbers (SQLite), rebuilt from the entries when behind;
- ``checkpoint`` (the newest signed checkpoint) and ``checkpoints`` (every one, one JSON line each).

Appends are batched: ``append`` writes a batch to the three files and ``fdatasync``s the entries
before it returns, so an entry is durable before anybody is told its number (one sync per batch:
offsets and hashes are derived data). At start the files are brought back to the entries: a torn last
line, never acknowledged, is cut, and offsets and hashes a crash lost are computed again.
"""

from __future__ import annotations

import json
import os
import sqlite3
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
        self.index = TenantIndex(directory, read_only=read_only)
        self.size = 0
        self.end = 0
        """Byte length of the committed entries."""
        self.frontier = Frontier()
        if read_only:
            self._measure()
        else:
            self._recover()

    def close(self) -> None:
        self.index.close()
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
            os.fdatasync(self._entries)  # offsets and hashes are derived: rebuilt at start if lost
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
        """Bring the files back to the entries they agree on. The entries file is the truth (it is
        the one synced before an append is acknowledged): a torn last line is cut; offsets and hashes
        that a crash lost are computed again from the entries."""
        data_length = os.fstat(self._entries).st_size
        count = os.fstat(self._offsets).st_size // 8
        # Offsets past the data, or not at the end of a line, are a crash's leftovers: drop them.
        while count and (
            self.offset(count) > data_length
            or _read_at(self._entries, 1, self.offset(count) - 1) != b"\n"
        ):
            count -= 1
        end = self.offset(count) if count else 0
        tail = _read_at(self._entries, data_length - end, end) if data_length > end else b""
        complete = tail[: tail.rfind(b"\n") + 1]
        extra = bytearray()
        position = end
        for line in complete.split(b"\n")[:-1]:
            position += len(line) + 1
            extra += OFFSET.pack(position)
        os.ftruncate(self._entries, position)
        os.ftruncate(self._offsets, count * 8)
        _write_all(self._offsets, bytes(extra))
        count += len(extra) // 8
        end = position
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
    """Entry numbers per tenant stream (``account:<id>``, ``app:<id>``), for the events API.

    Derived data in an SQLite file of its own (``index.db``, WAL): numbers are added in memory as
    entries are appended and written every second in one transaction together with how many entries
    they cover, so after a crash the index is consistent and the entries after that point are indexed
    again from the log at start."""

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        self.path = directory / "index.db"
        self.read_only = read_only
        self._pending: list[tuple[str, int]] = []
        self.durable = self.covered = 0
        if read_only:  # verification reads entries only; opening SQLite would write beside it
            self._db: sqlite3.Connection | None = None
            return
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        os.chmod(self.path, FILE_MODE)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS streams (key TEXT NOT NULL, seq INTEGER NOT NULL, "
            "PRIMARY KEY (key, seq)) WITHOUT ROWID"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS covered (id INTEGER PRIMARY KEY CHECK (id = 0), "
            "entries INTEGER NOT NULL)"
        )
        row = self._db.execute("SELECT entries FROM covered WHERE id = 0").fetchone()
        self.durable = int(row[0]) if row else 0
        """Entries the index file covers."""
        self.covered = self.durable
        """Entries added (written or pending)."""

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            raise PermissionError("the tenant index of a read-only log is not open")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()

    def add(self, seq: int, keys: Iterable[str]) -> None:
        self._pending.extend((key, seq) for key in keys)
        if len(self._pending) > 100_000:
            self.flush()

    def flush(self) -> None:
        """Write the pending numbers and the position they reach, in one transaction."""
        if self.covered == self.durable and not self._pending:
            return
        pending, self._pending = self._pending, []
        covered = self.covered
        db = self._open()
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR IGNORE INTO streams (key, seq) VALUES (?, ?)", pending)
            db.execute(
                "INSERT INTO covered (id, entries) VALUES (0, ?) "
                "ON CONFLICT (id) DO UPDATE SET entries = excluded.entries",
                (covered,),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            self._pending = pending + self._pending
            raise OSError(f"cannot write the audit index {self.path}: {exc}") from exc
        self.durable = covered

    def catch_up(self, log: AuditLog) -> None:
        start = min(self.durable, log.size)
        for seq, entry in enumerate(log.iter_entries(start), start):
            self.add(seq, entry_keys(json.loads(entry)))
        self.covered = log.size
        self.flush()

    def seqs_before(self, key: str, before: int, limit: int) -> list[int]:
        """Up to ``limit`` numbers of ``key``'s stream below ``before``, newest first."""
        found = {seq for k, seq in self._pending if k == key and seq < before}
        rows = (
            self._open()
            .execute(
                "SELECT seq FROM streams WHERE key = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (key, before, limit),
            )
            .fetchall()
        )
        found.update(int(row[0]) for row in rows)
        return sorted(found, reverse=True)[:limit]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
