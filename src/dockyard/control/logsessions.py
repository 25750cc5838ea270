"""Log sessions: ``POST /apps/{app}/log-sessions`` hands out a one-time URL that streams the app's log."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.errors import InvalidError, NotFoundError
from dockyard.logs.line import LogLine
from dockyard.store.records import Account

SESSION_TTL_SECONDS = 300.0
MAX_LINES = 1500
DEFAULT_LINES = 100
TAIL_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class LogQuery:
    app_id: str
    lines: int
    tail: bool
    source: str | None
    dyno: str | None

    def accepts(self, line: LogLine) -> bool:
        if self.source is not None and line.source != self.source:
            return False
        if self.dyno is None:
            return True
        # "web" matches web.1, web.2…; "web.1" matches only itself.
        return line.dyno == self.dyno or (
            "." not in self.dyno and line.dyno.startswith(self.dyno + ".")
        )


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
    ) -> str:
        count = DEFAULT_LINES if lines is None else lines
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_LINES:
            raise InvalidError(f"lines must be a number from 0 to {MAX_LINES}", field="lines")
        if source not in (None, "app", "heroku"):
            raise InvalidError('source must be "app" or "heroku"', field="source")
        with self.platform.store.read() as tx:
            app = app_for(tx, account, app_ref)
        now = self.platform.clock.monotonic()
        self._sessions = {k: v for k, v in self._sessions.items() if v[0] > now}
        session_id = secrets.token_urlsafe(24)
        self._sessions[session_id] = (
            now + SESSION_TTL_SECONDS,
            LogQuery(app.id, count, bool(tail), source, dyno or None),
        )
        return session_id

    def take(self, session_id: str) -> LogQuery:
        entry = self._sessions.pop(session_id, None)
        if entry is None or entry[0] <= self.platform.clock.monotonic():
            raise NotFoundError("This log session does not exist or was already used")
        return entry[1]

    async def stream(self, query: LogQuery) -> AsyncIterator[str]:
        """The newest lines, then (with ``tail``) new lines as they arrive."""
        follower = self.platform.logs.follow_from(query.app_id) if query.tail else None
        for line in self.platform.logs.tail(query.app_id, query.lines, accept=query.accepts):
            yield line.format() + "\n"
        if follower is None:
            return
        while True:
            for line in follower.read_new():
                if query.accepts(line):
                    yield line.format() + "\n"
            await asyncio.sleep(TAIL_POLL_SECONDS)
