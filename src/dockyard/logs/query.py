"""``LogFilter``: which lines a reader wants (one source, one dyno or process type, a text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dockyard.logs.line import LogLine, split_raw


@dataclass(frozen=True)
class LogFilter:
    source: str | None = None
    """``app`` or ``heroku``."""
    dyno: str | None = None
    """``web.1`` matches only that dyno; ``web`` matches ``web.1``, ``web.2``…"""
    grep: str | None = None
    """Only lines whose text contains this."""

    @property
    def everything(self) -> bool:
        return self.source is None and self.dyno is None and not self.grep

    def _dyno_matches(self, dyno: str) -> bool:
        wanted = self.dyno
        if wanted is None:
            return True
        return dyno == wanted or ("." not in wanted and dyno.startswith(wanted + "."))

    def accepts(self, line: LogLine) -> bool:
        if self.source is not None and line.source != self.source:
            return False
        if not self._dyno_matches(line.dyno):
            return False
        return not self.grep or self.grep in line.message

    def accepts_raw(self, raw: bytes) -> bool:
        """``accepts`` for a formatted line as bytes (the logs process never decodes lines)."""
        if self.everything:
            return True
        parts = split_raw(raw)
        if parts is None:
            return False
        _, source, dyno, message = parts
        if self.source is not None and source != self.source.encode():
            return False
        if self.dyno is not None and not self._dyno_matches(dyno.decode("utf-8", "replace")):
            return False
        return not self.grep or self.grep.encode() in message

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "dyno": self.dyno, "grep": self.grep}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogFilter:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(source=text("source"), dyno=text("dyno"), grep=text("grep"))
