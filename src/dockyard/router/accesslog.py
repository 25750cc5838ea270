"""The ``heroku[router]`` lines, kept off the hot path.

A request only appends ``(app_id, time, message)`` to a list. A periodic task swaps the list out
every quarter of a second and writes the batch to the app streams from a worker thread, one
``append_text`` per app. The lines are formatted straight from the message and the time (the same
bytes ``LogLine.format`` would give), without a ``LogLine`` or ``datetime`` per line.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime

from dockyard.logs.line import MAX_MESSAGE_BYTES, format_line, make_lines
from dockyard.logs.store import FileLogStore

logger = logging.getLogger("dockyard.router")

Entry = tuple[str, float, bytes | str]


class RouterLog:
    def __init__(self, store: FileLogStore | None, *, max_pending: int = 100_000) -> None:
        self.store = store
        self.max_pending = max_pending
        self._pending: list[Entry] = []
        self._dropped = 0
        self._failing = False
        self._lock = asyncio.Lock()

    def add(self, app_id: str, when: float, message: bytes | str) -> None:
        """Queue one line; ``when`` is seconds since the epoch. Cheap: no I/O, no decoding."""
        if len(self._pending) < self.max_pending:
            self._pending.append((app_id, when, message))
        else:
            self._dropped += 1

    async def flush(self) -> None:
        """Write what is queued (from a worker thread) and return when it is on disk."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            dropped, self._dropped = self._dropped, 0
            if dropped:
                logger.warning("dropped %d router log line(s): the log store is too slow", dropped)
            if self.store is not None:
                await asyncio.to_thread(self._write, self.store, batch)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    def _write(self, store: FileLogStore, batch: list[Entry]) -> None:
        by_app: dict[str, list[str]] = defaultdict(list)
        for app_id, when, raw in batch:
            message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if message.isprintable() and len(message) * 4 <= MAX_MESSAGE_BYTES:
                by_app[app_id].append(format_line(when, "heroku", "router", message))
            else:  # control characters to escape, or long enough to need splitting
                timestamp = datetime.fromtimestamp(when, UTC)
                split = make_lines("heroku", "router", message, timestamp)
                by_app[app_id].extend(line.format() for line in split)
        try:
            for app_id, lines in by_app.items():
                store.append_text(app_id, "\n".join(lines) + "\n")
        except (OSError, ValueError) as exc:
            if not self._failing:
                logger.warning("cannot write router log lines: %s", exc)
            self._failing = True
        else:
            if self._failing:
                logger.info("router log lines are written again")
            self._failing = False
