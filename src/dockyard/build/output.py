"""``BuildOutput``: build output in Heroku's style, sent line by line as it is produced and kept
(capped) for the build record.

    -----> Heading
           detail line
     !     error line
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

HEADING = "-----> "
INDENT = " " * 7
ERROR = " !     "
DEFAULT_LIMIT = 1 << 20
"""Bytes of output kept for the build record; older lines are dropped first (Heroku truncates from
the start too)."""
TRUNCATED = "(earlier build output was truncated)"


class BuildOutput:
    def __init__(
        self, on_line: Callable[[str], None] | None = None, *, limit: int = DEFAULT_LIMIT
    ) -> None:
        self._on_line = on_line
        self._limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self._truncated = False

    def line(self, text: str) -> None:
        """One line as it is (a buildpack's own output, already styled by it)."""
        text = text.rstrip("\r\n")
        if "\n" in text:
            for part in text.split("\n"):
                self.line(part)
            return
        self._keep(text)
        if self._on_line is not None:
            self._on_line(text)

    def heading(self, text: str) -> None:
        self.line(HEADING + text)

    def detail(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line(INDENT + part)

    def error(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line(ERROR + part)

    def blank(self) -> None:
        self.line("")

    @property
    def text(self) -> str:
        """Everything produced so far (the newest ``limit`` bytes), one line per line."""
        body = "".join(line + "\n" for line in self._lines)
        return f"{TRUNCATED}\n{body}" if self._truncated else body

    @property
    def truncated(self) -> bool:
        return self._truncated

    def _keep(self, text: str) -> None:
        size = len(text.encode("utf-8", "replace")) + 1
        if size > self._limit:
            text = text[-self._limit // 4 :]
            size = len(text.encode("utf-8", "replace")) + 1
        self._lines.append(text)
        self._size += size
        while self._size > self._limit and len(self._lines) > 1:
            dropped = self._lines.popleft()
            self._size -= len(dropped.encode("utf-8", "replace")) + 1
            self._truncated = True


def human_size(size: int) -> str:
    """Heroku's compact sizes: ``512B``, ``1.2K``, ``52.8M``, ``1.1G``."""
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{size}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")
