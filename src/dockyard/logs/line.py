"""``LogLine``: ``<RFC 3339 timestamp with microseconds> <source>[<dyno>]: <message>``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_MESSAGE_BYTES = 10_000
_PARSE = re.compile(r"^(?P<ts>\S+) (?P<source>[a-z]+)\[(?P<dyno>[^\]]*)\]: (?P<message>.*)$")


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    source: str
    """``app`` for the app's own output, ``heroku`` for the platform."""
    dyno: str
    """``web.1``, ``router``, ``api``, ``release.3``…"""
    message: str

    def format(self) -> str:
        ts = self.timestamp.astimezone(UTC).isoformat(timespec="microseconds")
        return f"{ts} {self.source}[{self.dyno}]: {self.message}"

    @classmethod
    def parse(cls, text: str) -> LogLine | None:
        match = _PARSE.match(text)
        if match is None:
            return None
        try:
            timestamp = datetime.fromisoformat(match["ts"])
        except ValueError:
            return None
        return cls(timestamp, match["source"], match["dyno"], match["message"])


def make_lines(source: str, dyno: str, raw: bytes | str, timestamp: datetime) -> list[LogLine]:
    """Turn one raw output line into log lines: invalid UTF-8 is replaced, not dropped, control
    characters other than tab are escaped, and messages over 10,000 bytes are split."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    text = "".join(c if c == "\t" or c >= " " else f"\\x{ord(c):02x}" for c in text)
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return [LogLine(timestamp, source, dyno, text)]
    chunks = []
    start = 0
    while start < len(encoded):
        end = min(start + MAX_MESSAGE_BYTES, len(encoded))
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1  # never cut a UTF-8 sequence in half
        chunks.append(LogLine(timestamp, source, dyno, encoded[start:end].decode("utf-8")))
        start = end
    return chunks
