"""Log sessions: ``POST /apps/{app}/log-sessions`` hands out a one-time URL that streams the app's log.

Opening the URL asks the logs process (``dockyard.logs.server``) for the newest lines from its ring
buffer and, with ``tail``, every line after them; the API copies its answer through. When the logs
process cannot be reached the API reads the same segment files itself (the newest lines from the
end of the history, a tail by polling them), so ``logs`` works while the logs process restarts.
``since``/``until`` search the on-disk history instead of the ring buffer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.errors import InvalidError, NotFoundError
from dockyard.logs import channel
from dockyard.logs.line import LogLine, format_timestamp
from dockyard.logs.query import LogFilter
from dockyard.store.records import Account

log = logging.getLogger("dockyard.logs")

SESSION_TTL_SECONDS = 300.0
MAX_LINES = 1500
MAX_SEARCH_LINES = 10_000
DEFAULT_LINES = 100
TAIL_POLL_SECONDS = 0.1
MAX_GREP_LENGTH = 200
_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class LogQuery:
    app_id: str
    lines: int
    tail: bool
    filter: LogFilter = field(default_factory=LogFilter)
    since: str | None = None
    """Formatted like the lines' timestamps (``2026-03-01T12:00:00.000000+00:00``)."""
    until: str | None = None

    @property
    def source(self) -> str | None:
        return self.filter.source

    @property
    def dyno(self) -> str | None:
        return self.filter.dyno

    def accepts(self, line: LogLine) -> bool:
        return self.filter.accepts(line)


def parse_instant(value: str, now: datetime, name: str) -> str:
    """``2026-03-01T12:00:00Z`` (any RFC 3339 time) or ``30s``/``15m``/``2h``/``7d`` ago, formatted
    like the lines' timestamps."""
    text = value.strip()
    ago = _AGO.fullmatch(text.lower())
    if ago is not None:
        when = now - timedelta(seconds=float(ago[1]) * _UNITS[ago[2]])
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise InvalidError(
                f"{name} must be a time such as 2026-03-01T12:00:00Z, or an age such as 30m, "
                f"2h or 7d — not {value!r}",
                field=name,
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return format_timestamp(when)


class LogSessions:
    """One-time sessions held in the API process; a session is consumed when its URL is opened."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._sessions: dict[str, tuple[float, LogQuery]] = {}

    def create(
        self,
        account: Account,
        app_ref: str,
        *,
        lines: int | None = None,
        tail: bool = False,
        source: str | None = None,
        dyno: str | None = None,
        since: str | None = None,
        until: str | None = None,
        grep: str | None = None,
    ) -> str:
        searching = bool(since or until)
        limit = MAX_SEARCH_LINES if searching else MAX_LINES
        count = (limit if searching else DEFAULT_LINES) if lines is None else lines
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= limit:
            raise InvalidError(f"lines must be a number from 0 to {limit}", field="lines")
        if source not in (None, "app", "heroku"):
            raise InvalidError('source must be "app" or "heroku"', field="source")
        if grep is not None and len(grep) > MAX_GREP_LENGTH:
            raise InvalidError(f"grep must be at most {MAX_GREP_LENGTH} characters", field="grep")
        now = self.platform.clock.now()
        since_at = parse_instant(since, now, "since") if since else None
        until_at = parse_instant(until, now, "until") if until else None
        with self.platform.store.read() as tx:
            app = app_for(tx, account, app_ref)
        expires = self.platform.clock.monotonic()
        self._sessions = {k: v for k, v in self._sessions.items() if v[0] > expires}
        session_id = secrets.token_urlsafe(24)
        wanted = LogFilter(source=source, dyno=dyno or None, grep=grep or None)
        query = LogQuery(app.id, count, bool(tail), wanted, since_at, until_at)
        self._sessions[session_id] = (expires + SESSION_TTL_SECONDS, query)
        return session_id

    def take(self, session_id: str) -> LogQuery:
        entry = self._sessions.pop(session_id, None)
        if entry is None or entry[0] <= self.platform.clock.monotonic():
            raise NotFoundError("This log session does not exist or was already used")
        return entry[1]

    async def stream(self, query: LogQuery) -> AsyncIterator[bytes]:
        """The newest lines (or the lines of the searched range), then with ``tail`` new lines
        as they arrive; whole lines, as UTF-8 bytes."""
        store = self.platform.logs
        lines = query.lines
        if query.since is not None or query.until is not None:
            found = await asyncio.to_thread(
                store.search,
                query.app_id,
                since=query.since,
                until=query.until,
                limit=query.lines,
                accept=query.filter.accepts,
            )
            if found:
                yield "".join(line.format() + "\n" for line in found).encode()
            if not query.tail:
                return
            lines = 0
        started = False
        try:
            async for chunk in channel.stream(
                store, query.app_id, lines=lines, tail=query.tail, wanted=query.filter
            ):
                started = True
                yield chunk
            return
        except OSError as exc:
            if started:
                return  # the logs process went away mid-stream: the session ends
            log.warning("logs: the logs process does not answer (%s); reading the files", exc)
        async for chunk in self._from_files(query, lines):
            yield chunk

    async def _from_files(self, query: LogQuery, lines: int) -> AsyncIterator[bytes]:
        store = self.platform.logs
        follower = store.follow_from(query.app_id) if query.tail else None
        newest = await asyncio.to_thread(store.tail, query.app_id, lines, accept=query.accepts)
        if newest:
            yield "".join(line.format() + "\n" for line in newest).encode()
        if follower is None:
            return
        try:
            while True:
                data = await asyncio.to_thread(follower.read_bytes)
                if data and not query.filter.everything:
                    kept = [raw for raw in data.split(b"\n")[:-1] if query.filter.accepts_raw(raw)]
                    data = b"".join(raw + b"\n" for raw in kept)
                if data:
                    yield data
                await asyncio.sleep(TAIL_POLL_SECONDS)
        finally:
            follower.close()
