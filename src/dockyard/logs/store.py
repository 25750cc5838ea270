"""``FileLogStore``: each app's stream as an append-only file shared by every platform process.

Writers (the API, the build, the agent) append whole lines with one ``write`` on an ``O_APPEND`` file, so lines
from several processes never interleave. Each file is capped: past ``max_bytes`` it is rotated once, so an app
keeps between one and two caps of history. The Logs issue replaces this with ring buffers, a bounded history
and drains behind the same methods.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dockyard.logs.line import LogLine

DEFAULT_MAX_BYTES = 8 << 20


class FileLogStore:
    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _path(self, app_id: str) -> Path:
        if not app_id or "/" in app_id or app_id.startswith("."):
            raise ValueError(f"invalid app id {app_id!r}")
        return self.root / f"{app_id}.log"

    def append(self, app_id: str, lines: Iterable[LogLine]) -> None:
        self.append_text(app_id, "".join([line.format() + "\n" for line in lines]))

    def append_text(self, app_id: str, text: str) -> None:
        """Append lines already formatted (``LogLine.format`` plus a newline each), in one write.

        For writers that produce many lines at once and format them more cheaply than through
        ``LogLine`` objects (the router). ``text`` must end with a newline: a partial line would run
        into the next writer's first line."""
        if not text:
            return
        if not text.endswith("\n"):
            raise ValueError("append_text takes whole lines: the text must end with a newline")
        data = text.encode("utf-8")
        path = self._path(app_id)
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > self.max_bytes:
            os.replace(path, path.with_suffix(".log.1"))

    def tail(
        self, app_id: str, lines: int, *, accept: Callable[[LogLine], bool] | None = None
    ) -> list[LogLine]:
        """The newest ``lines`` lines that ``accept`` lets through, oldest first."""
        path = self._path(app_id)
        newest: deque[LogLine] = deque(maxlen=max(lines, 0))
        for candidate in (path.with_suffix(".log.1"), path):
            for line in _read_lines(candidate):
                if accept is None or accept(line):
                    newest.append(line)
        return list(newest)

    def follow_from(self, app_id: str) -> LogFollower:
        """A reader positioned at the current end of the stream, for ``logs --tail``."""
        path = self._path(app_id)
        offset = path.stat().st_size if path.exists() else 0
        return LogFollower(path, offset)

    def delete(self, app_id: str) -> None:
        path = self._path(app_id)
        path.unlink(missing_ok=True)
        path.with_suffix(".log.1").unlink(missing_ok=True)


class LogFollower:
    """Returns lines appended since the last call; survives one rotation between calls."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self._partial = b""

    def read_new(self) -> list[LogLine]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # rotated: finish nothing from the old file, start the new one
            self.offset = 0
            self._partial = b""
        if size == self.offset:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read(size - self.offset)
        self.offset = size
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line for raw in complete if (line := LogLine.parse(raw.decode("utf-8", "replace")))]


def _read_lines(path: Path) -> Iterator[LogLine]:
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for raw in handle:
            line = LogLine.parse(raw.rstrip("\n"))
            if line is not None:
                yield line
