"""``FileLogStore``: each app's stream as append-only segment files shared by every platform process.

Layout under the logs directory (``docs/logs.md`` has the whole design)::

    <app id>.log            the current segment, appended to by every writer
    <app id>/<number>.log   closed segments, oldest first (numbers grow with time)
    .notify                 the logs process's datagram socket: "this app has new lines"

Writers (the API, builds and release phase in its threads, the agent, the router, the logs process)
append whole lines with one ``write`` on an ``O_APPEND`` file while holding a shared ``flock`` on
it, so lines from several processes never interleave and the file order is the stream order.
Rotation renames the current segment while holding the lock exclusively, so no line is written to a
segment after it was renamed; a reader that sees a new inode finishes the old one and moves on
(``LogFollower``). After each append a writer sends the app id to ``.notify`` without waiting, which
is how the logs process learns of new lines at once.

Retention (``prune``) deletes the oldest closed segments of an app past a size or an age; the logs
process runs it with the operator's settings. Writers only rotate, at ``rotate_bytes`` (64 MB by
default), so a segment stays bounded while the logs process is down.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dockyard.logs.line import LogLine

WRITER_ROTATE_BYTES = 64 << 20
NOTIFY_NAME = ".notify"
SESSION_NAME = ".session"
_SEGMENT_SUFFIX = ".log"
_READ_BLOCK = 1 << 16
_TIMESTAMP_WIDTH = len("2026-03-01T12:00:00.250000+00:00")


class FileLogStore:
    """One directory of app log streams. Its notifications go through one unbound datagram socket
    that its threads share, opened at the first append and closed by ``close``, when the store is
    collected, or when the process exits."""

    def __init__(self, root: Path, *, rotate_bytes: int = WRITER_ROTATE_BYTES) -> None:
        self.root = root
        self.rotate_bytes = rotate_bytes
        self._notify_lock = threading.Lock()
        self._notify_socket: socket.socket | None = None
        self._notify_closer: weakref.finalize[[], FileLogStore] | None = None

    # -- paths ----------------------------------------------------------------------------------

    def _path(self, app_id: str) -> Path:
        if not app_id or "/" in app_id or app_id.startswith(".") or "\0" in app_id:
            raise ValueError(f"invalid app id {app_id!r}")
        return self.root / f"{app_id}{_SEGMENT_SUFFIX}"

    def current_path(self, app_id: str) -> Path:
        return self._path(app_id)

    def segments_dir(self, app_id: str) -> Path:
        return self.root / self._path(app_id).stem

    @property
    def notify_path(self) -> Path:
        return self.root / NOTIFY_NAME

    @property
    def session_path(self) -> Path:
        return self.root / SESSION_NAME

    def closed_segments(self, app_id: str) -> list[Path]:
        """The app's closed segments, oldest first."""
        try:
            names = os.listdir(self.segments_dir(app_id))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = [n for n in names if n.endswith(_SEGMENT_SUFFIX) and n[:-4].isdigit()]
        return [self.segments_dir(app_id) / n for n in sorted(found, key=lambda n: int(n[:-4]))]

    def segments(self, app_id: str) -> list[Path]:
        """Every segment of the app that exists, oldest first (the current one last)."""
        current = self._path(app_id)
        return [*self.closed_segments(app_id), *([current] if current.exists() else [])]

    def app_ids(self) -> list[str]:
        """Apps that have a stream."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        ids = set()
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.name.endswith(_SEGMENT_SUFFIX) and entry.is_file():
                ids.add(entry.name[: -len(_SEGMENT_SUFFIX)])
            elif entry.is_dir():
                ids.add(entry.name)
        return sorted(ids)

    # -- writing --------------------------------------------------------------------------------

    def append(self, app_id: str, lines: Iterable[LogLine]) -> None:
        self.append_text(app_id, "".join([line.format() + "\n" for line in lines]))

    def append_text(self, app_id: str, text: str) -> None:
        """Append lines already formatted (``LogLine.format`` plus a newline each), in one write.

        For writers that produce many lines at once and format them more cheaply than through
        ``LogLine`` objects (the router, the agent). ``text`` must end with a newline: a partial
        line would run into the next writer's first line."""
        if not text:
            return
        if not text.endswith("\n"):
            raise ValueError("append_text takes whole lines: the text must end with a newline")
        self.append_bytes(app_id, text.encode("utf-8"))

    def append_bytes(self, app_id: str, data: bytes) -> None:
        """``append_text`` for text already encoded as UTF-8."""
        if not data:
            return
        if not data.endswith(b"\n"):
            raise ValueError("append_bytes takes whole lines: the data must end with a newline")
        path = self._path(app_id)
        size = self._locked_append(path, data)
        if size >= self.rotate_bytes:
            self.rotate(app_id, min_bytes=self.rotate_bytes)
        self.notify(app_id)

    def _locked_append(self, path: Path, data: bytes) -> int:
        """Append under a shared lock on the current segment; the segment's size after it."""
        for _ in range(100):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            except FileNotFoundError:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                info = os.fstat(fd)
                if not _same_file(path, info):
                    continue  # rotated between open and lock: append to the new segment
                view = memoryview(data)
                while view:  # one write, unless the disk is full or a signal cut it short
                    view = view[os.write(fd, view) :]
                return info.st_size + len(data)
            finally:
                os.close(fd)  # also releases the lock
        raise OSError(f"could not append to {path}: it keeps being rotated")

    def notify(self, app_id: str) -> None:
        """Tell the logs process, if it runs, that the app has new lines; never waits."""
        sock = self._notify_socket
        if sock is None:
            with self._notify_lock:
                sock = self._notify_socket
                if sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    sock.setblocking(False)
                    self._notify_closer = weakref.finalize(self, sock.close)
                    self._notify_socket = sock
        with contextlib.suppress(OSError):  # no logs process, or it is busy: it polls too
            sock.sendto(app_id.encode(), str(self.notify_path))

    def close(self) -> None:
        """Close the notification socket (an append after this opens a new one)."""
        with self._notify_lock:
            closer, self._notify_closer, self._notify_socket = self._notify_closer, None, None
        if closer is not None:
            closer()

    # -- rotation and retention -----------------------------------------------------------------

    def rotate(self, app_id: str, *, min_bytes: int = 1) -> Path | None:
        """Close the current segment if it holds at least ``min_bytes``; the closed segment."""
        path = self._path(app_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            info = os.fstat(fd)
            if not _same_file(path, info) or info.st_size < max(min_bytes, 1):
                return None
            directory = self.segments_dir(app_id)
            directory.mkdir(mode=0o700, exist_ok=True)
            closed = self.closed_segments(app_id)
            newest = _segment_number(closed[-1]) if closed else 0
            # Numbers grow with time, so they keep growing after pruning emptied the directory.
            number = max(time.time_ns() // 1000, newest + 1)
            target = directory / f"{number:016d}{_SEGMENT_SUFFIX}"
            os.rename(path, target)
            return target
        finally:
            os.close(fd)

    def history_bytes(self, app_id: str) -> int:
        total = 0
        for path in self.segments(app_id):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def prune(
        self, app_id: str, *, max_bytes: int | None = None, older_than: float | None = None
    ) -> list[Path]:
        """Delete the oldest closed segments while the app's history is over ``max_bytes``, and
        every segment whose newest line was written before ``older_than`` (seconds since the
        epoch). A current segment that is too old is closed first. The deleted segments."""
        if older_than is not None:
            with contextlib.suppress(FileNotFoundError):
                if self._path(app_id).stat().st_mtime < older_than:
                    self.rotate(app_id)
        sizes: list[tuple[Path, int, float]] = []
        for path in self.closed_segments(app_id):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                sizes.append((path, info.st_size, info.st_mtime))
        current = 0
        with contextlib.suppress(FileNotFoundError):
            current = self._path(app_id).stat().st_size
        total = current + sum(size for _, size, _ in sizes)
        deleted = []
        for path, size, mtime in sizes:
            too_big = max_bytes is not None and total > max_bytes
            too_old = older_than is not None and mtime < older_than
            if not (too_big or too_old):
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
            deleted.append(path)
        return deleted

    def delete(self, app_id: str) -> None:
        path = self._path(app_id)
        path.unlink(missing_ok=True)
        for segment in self.closed_segments(app_id):
            segment.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.segments_dir(app_id).rmdir()

    # -- reading --------------------------------------------------------------------------------

    def tail(
        self, app_id: str, lines: int, *, accept: Callable[[LogLine], bool] | None = None
    ) -> list[LogLine]:
        """The newest ``lines`` lines that ``accept`` lets through, oldest first; reads the
        history backwards from its end, only as far as it needs."""
        wanted = max(lines, 0)
        newest: list[LogLine] = []
        if wanted == 0:
            return newest
        for path in reversed(self.segments(app_id)):
            for raw in _reversed_lines(path):
                line = LogLine.parse(raw.decode("utf-8", "replace"))
                if line is not None and (accept is None or accept(line)):
                    newest.append(line)
                    if len(newest) == wanted:
                        return newest[::-1]
        return newest[::-1]

    def tail_bytes(self, app_id: str, lines: int) -> list[bytes]:
        """The newest ``lines`` raw lines (without their newline), oldest first."""
        newest: list[bytes] = []
        if lines <= 0:
            return newest
        for path in reversed(self.segments(app_id)):
            for raw in _reversed_lines(path):
                if raw:
                    newest.append(raw)
                    if len(newest) == lines:
                        return newest[::-1]
        return newest[::-1]

    def search(
        self,
        app_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int,
        accept: Callable[[LogLine], bool] | None = None,
    ) -> list[LogLine]:
        """The newest ``limit`` lines from ``since`` up to ``until`` (timestamps formatted like the
        lines' own, ``2026-03-01T12:00:00.000000+00:00``) that ``accept`` lets through."""
        found: deque[LogLine] = deque(maxlen=max(limit, 0))
        for path in self.segments(app_id):
            if since is not None and _modified_before(path, since):
                continue
            for raw in _read_lines(path):
                stamp = raw[:_TIMESTAMP_WIDTH].decode("ascii", "replace")
                if since is not None and stamp < since:
                    continue
                if until is not None and stamp > until:
                    return list(found)
                line = LogLine.parse(raw.decode("utf-8", "replace"))
                if line is not None and (accept is None or accept(line)):
                    found.append(line)
        return list(found)

    def follow_from(self, app_id: str) -> LogFollower:
        """A reader positioned at the current end of the stream, for ``logs --tail``."""
        return LogFollower(self, app_id)


class LogFollower:
    """Hands out the lines appended since the last call, in the stream's order, across rotations.

    Its position is the newest closed segment it has read (``consumed``), the current segment it
    holds open and an offset in it. A rotation renames the held segment, which becomes the first
    closed segment after ``consumed``; the follower finishes it through its open descriptor, then
    reads any segment closed after it, then opens the new current segment, and checks that no
    rotation slipped in between (if one did, it goes round again)."""

    def __init__(self, store: FileLogStore, app_id: str, *, at_end: bool = True) -> None:
        self.store = store
        self.app_id = app_id
        self.path = store.current_path(app_id)
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self.offset = 0
        self._partial = b""
        self._consumed = self._newest_closed()
        if at_end:
            self._adopt_current(at_end=True)

    def _newest_closed(self) -> int:
        closed = self.store.closed_segments(self.app_id)
        return _segment_number(closed[-1]) if closed else 0

    def _adopt_current(self, *, at_end: bool) -> bool:
        """Open the current segment if no rotation happened since ``consumed``; False if one did."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._newest_closed() == self._consumed
        if self._newest_closed() != self._consumed:
            os.close(fd)
            return False
        info = os.fstat(fd)
        self._fd, self._inode = fd, (info.st_dev, info.st_ino)
        self.offset = info.st_size if at_end else 0
        return True

    def _read_rest(self) -> bytes:
        """What the open segment holds past ``offset``."""
        if self._fd is None:
            return b""
        size = os.fstat(self._fd).st_size
        chunks = []
        while self.offset < size:
            chunk = os.pread(self._fd, min(size - self.offset, 4 << 20), self.offset)
            if not chunk:
                break
            chunks.append(chunk)
            self.offset += len(chunk)
        return b"".join(chunks)

    def pending_bytes(self) -> int:
        """How far the current segment is ahead of this reader (0 when it is caught up)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return 1 if self._fd is not None or self._newest_closed() != self._consumed else 0
        if self._inode != (info.st_dev, info.st_ino):
            return max(info.st_size, 1)
        return max(info.st_size - self.offset, 0)

    def read_bytes(self) -> bytes:
        """Whole lines (each ending in a newline) appended since the last call."""
        try:
            info: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            info = None
        parts: list[bytes] = []
        if self._fd is not None and (info is None or self._inode != (info.st_dev, info.st_ino)):
            # Rotated: the held segment is complete (rotation excludes writers); finish it.
            parts.append(self._read_rest())
            for path in self.store.closed_segments(self.app_id):
                number = _segment_number(path)
                if number > self._consumed:
                    with contextlib.suppress(FileNotFoundError):
                        held = path.stat()
                        if (held.st_dev, held.st_ino) == self._inode:
                            self._consumed = number
                    break
            os.close(self._fd)
            self._fd, self._inode, self.offset = None, None, 0
        if self._fd is None:
            for _ in range(100):
                for path in self.store.closed_segments(self.app_id):
                    number = _segment_number(path)
                    if number > self._consumed:
                        parts.append(_read_all(path))
                        self._consumed = number
                if self._adopt_current(at_end=False):
                    break
        parts.append(self._read_rest())
        data = self._partial + b"".join(parts)
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return data[:cut]

    def read_new(self) -> list[LogLine]:
        data = self.read_bytes()
        return [
            line
            for raw in data.split(b"\n")[:-1]
            if (line := LogLine.parse(raw.decode("utf-8", "replace")))
        ]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def _segment_number(path: Path) -> int:
    return int(path.name[: -len(_SEGMENT_SUFFIX)])


def _same_file(path: Path, info: os.stat_result) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    return (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino) and stat.S_ISREG(
        current.st_mode
    )


def _modified_before(path: Path, stamp: str) -> bool:
    """Whether the segment's newest line is older than the formatted timestamp ``stamp``."""
    from datetime import UTC, datetime

    try:
        mtime = path.stat().st_mtime
        since = datetime.fromisoformat(stamp).astimezone(UTC).timestamp()
    except (FileNotFoundError, ValueError):
        return False
    return mtime < since - 1.0


def _read_all(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _read_lines(path: Path) -> Iterator[bytes]:
    """The lines of a segment without their newline, read in blocks; a partial last line is
    left out (a writer is still writing it)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        rest = b""
        while block := handle.read(_READ_BLOCK * 16):
            data = rest + block
            *lines, rest = data.split(b"\n")
            yield from lines


def _reversed_lines(path: Path) -> Iterator[bytes]:
    """The complete lines of a segment, newest first, reading blocks from its end; what follows
    the last newline (a line still being written) is left out."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        end = handle.seek(0, os.SEEK_END)
        rest = b""
        complete = False
        while end > 0:
            start = max(0, end - _READ_BLOCK)
            handle.seek(start)
            data = handle.read(end - start) + rest
            end = start
            if not complete:
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                data, complete = data[:cut], True
            lines = data.split(b"\n")
            rest = lines[0] if start > 0 else b""
            for raw in reversed(lines[1:] if start > 0 else lines):
                if raw:
                    yield raw
