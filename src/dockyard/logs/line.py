"""``LogLine``: ``<RFC 3339 timestamp with microseconds> <source>[<dyno>]: <message>``.

Formatting is on the router's path for every request, so the whole-second part of the timestamp
(``2026-03-01T12:00:00``) is formatted once per second and reused; only the microseconds are
formatted per line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_MESSAGE_BYTES = 10_000
_PARSE = re.compile(r"^(?P<ts>\S+) (?P<source>[a-z]+)\[(?P<dyno>[^\]]*)\]: (?P<message>.*)$")

# The last whole second formatted (``2026-03-01T12:00:00.``), one cache per kind of input. Each is
# replaced whole (one tuple), so threads formatting at the same time read a consistent pair. The
# microseconds are zero-padded as ``str(micros + 1_000_000)[1:]``, which is cheaper than ``:06d``.
_last_datetime: tuple[tuple[int, int, int, int, int, int], str] = ((0, 0, 0, 0, 0, 0), "")
_last_epoch: tuple[int, str] = (-(1 << 62), "")


def format_timestamp(timestamp: datetime) -> str:
    """``timestamp`` in UTC as ``2026-03-01T12:00:00.250000+00:00``: what
    ``timestamp.astimezone(UTC).isoformat(timespec="microseconds")`` returns, in well under half
    the time."""
    global _last_datetime
    if timestamp.tzinfo is not UTC:
        timestamp = timestamp.astimezone(UTC)
    key = (
        timestamp.second,
        timestamp.minute,
        timestamp.hour,
        timestamp.day,
        timestamp.month,
        timestamp.year,
    )
    cached = _last_datetime
    if cached[0] != key:
        cached = _last_datetime = (key, timestamp.isoformat(timespec="seconds")[:19] + ".")
    return f"{cached[1]}{str(timestamp.microsecond + 1_000_000)[1:]}+00:00"


def format_line(when: float, source: str, dyno: str, message: str) -> str:
    """The text of ``LogLine(datetime.fromtimestamp(when, UTC), source, dyno, message).format()``,
    with the microseconds rounded the same way, without building either object (for the router,
    which writes a line per request). ``when`` is in seconds since the epoch; ``message`` is written
    as it is (``make_lines`` escapes and splits)."""
    global _last_epoch
    seconds = int(when)
    micros = round((when - seconds) * 1e6)  # the exact fraction, rounded half to even like datetime
    if micros >= 1_000_000:
        seconds += 1
        micros -= 1_000_000
    elif micros < 0:
        seconds -= 1
        micros += 1_000_000
    cached = _last_epoch
    if cached[0] != seconds:
        text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")[:19] + "."
        cached = _last_epoch = (seconds, text)
    return f"{cached[1]}{str(micros + 1_000_000)[1:]}+00:00 {source}[{dyno}]: {message}"


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    source: str
    """``app`` for the app's own output, ``heroku`` for the platform."""
    dyno: str
    """``web.1``, ``router``, ``api``, ``release.3``…"""
    message: str

    def format(self) -> str:
        return f"{format_timestamp(self.timestamp)} {self.source}[{self.dyno}]: {self.message}"

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
    if not text.isprintable():  # rare: look at each character only then
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


def split_raw(raw: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """``(timestamp, source, dyno, message)`` of a formatted line as bytes, without decoding it
    (drains and filters look at every line); None when it is not in the log format."""
    stamp, _, rest = raw.partition(b" ")
    head, sep, message = rest.partition(b": ")
    if not sep:
        head, sep, message = rest.partition(b":")
        if not sep or not head.endswith(b"]"):
            return None
    bracket = head.find(b"[")
    if bracket <= 0 or not head.endswith(b"]"):
        return None
    return stamp, head[:bracket], head[bracket + 1 : -1], message
