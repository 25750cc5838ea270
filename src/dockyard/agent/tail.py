"""``OutputTail``: new whole lines of a dyno's output file, from a remembered offset.

The file stays open, so lines a dyno writes while it shuts down can still be read after the runtime
has deleted the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

READ_LIMIT = 1 << 20
"""Bytes read per call, so one chatty dyno cannot hold up the others."""
MAX_LINE = 64 << 10
"""A line without a newline this long is passed on as it is."""


class OutputTail:
    def __init__(self, handle: BinaryIO, offset: int) -> None:
        self._handle = handle
        self._partial = b""
        self.offset = offset
        """Bytes of the file already passed on as whole lines."""

    @classmethod
    def open(cls, path: Path, offset: int = 0) -> OutputTail | None:
        """A tail from ``offset``, or None when the file does not exist (yet)."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        size = path.stat().st_size
        offset = offset if 0 <= offset <= size else 0  # a shorter file is a new file
        handle.seek(offset)
        return cls(handle, offset)

    def read_lines(self, *, final: bool = False) -> list[bytes]:
        """Whole lines written since the last call (without their newline); with ``final``, also
        the last line even if it has no newline."""
        data = self._handle.read(READ_LIMIT)
        buffer = self._partial + data
        *lines, self._partial = buffer.split(b"\n")
        if len(self._partial) >= MAX_LINE or (final and self._partial):
            lines.append(self._partial)
            self._partial = b""
        self.offset += len(buffer) - len(self._partial)
        return lines

    def close(self) -> None:
        self._handle.close()
