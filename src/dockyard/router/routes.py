"""Where the route table comes from, and how it survives an API outage.

The router long-polls a ``RouteSource`` (the API's ``/internal/v1/routes`` with ``If-None-Match``
and ``wait``: the API answers as soon as the table changes), applies each new table at once (the
proxy swaps one dict), and caches it on disk so a router that starts while the API is down still
serves the last table it knew. A failed poll is logged once per outage, and the recovery once; while
the API is away it is asked again every ``interval`` seconds, and an unchanged answer that comes
back sooner than that (an API that does not hold polls) is paced to one an ``interval``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard._util.secretfile import ensure_secret_file
from dockyard.client.dataplane import LONG_POLL, DataPlaneClient, Versioned
from dockyard.domain.dataplane import RouteTable
from dockyard.errors import UnavailableError
from dockyard.settings import Settings

logger = logging.getLogger("dockyard.router")

CACHE_FILE = "routes.json"


class RouteSource(Protocol):
    async def fetch(self, etag: str | None, wait: float = 0.0) -> Versioned[RouteTable] | None:
        """The current table, or None when unchanged since ``etag`` (after waiting up to ``wait``
        seconds for a change); raises when unreachable."""
        ...


class ApiRouteSource:
    """The route table as the control plane publishes it."""

    def __init__(self, client: DataPlaneClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiRouteSource:
        token = ensure_secret_file(settings.internal_token_file)
        return cls(DataPlaneClient.connect(settings.api_url, token))

    async def fetch(self, etag: str | None, wait: float = 0.0) -> Versioned[RouteTable] | None:
        return await self._client.route_table(etag, wait=wait)

    async def aclose(self) -> None:
        await self._client.aclose()


class FakeRouteSource:
    """An in-memory source for tests: ``publish`` a table, set ``failing`` to play an API outage."""

    def __init__(self, table: RouteTable | None = None) -> None:
        self._table = table or RouteTable()
        self._version = 1
        self._published = asyncio.Event()
        self.failing = False
        self.fetches = 0

    def publish(self, table: RouteTable) -> None:
        """A new table; a fetch waiting for a change returns it (call from the fetch's loop)."""
        self._table = table
        self._version += 1
        self._published.set()
        self._published = asyncio.Event()

    async def fetch(self, etag: str | None, wait: float = 0.0) -> Versioned[RouteTable] | None:
        self.fetches += 1
        if self.failing:
            raise UnavailableError("cannot reach the Dockyard API (FakeRouteSource.failing is set)")
        if etag == f'"{self._version}"' and wait > 0:
            try:
                await asyncio.wait_for(self._published.wait(), wait)
            except TimeoutError:
                return None
        current = f'"{self._version}"'
        if etag == current:
            return None
        return Versioned(self._table, current)


class RouteCache:
    """The last table seen, as JSON, written atomically (temporary file, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Versioned[RouteTable] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return Versioned(RouteTable.from_json(data["table"]), str(data.get("etag", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "ignoring the cached route table %s: it cannot be read (%s); "
                "the router starts empty and waits for the API",
                self.path,
                exc,
            )
            return None

    def save(self, versioned: Versioned[RouteTable]) -> None:
        data = json.dumps({"etag": versioned.etag, "table": versioned.value.to_json()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


class RouteRefresher:
    """Long-polls ``source`` (holding up to ``wait`` seconds) and hands each new table to ``apply``;
    ``interval`` is the pause after a failure, and the least time between two unchanged answers."""

    def __init__(
        self,
        source: RouteSource,
        apply: Callable[[RouteTable], None],
        *,
        cache: RouteCache | None,
        interval: float,
        wait: float = LONG_POLL,
    ) -> None:
        self.source = source
        self.apply = apply
        self.cache = cache
        self.interval = interval
        self.wait = wait
        self.etag: str | None = None
        self.failing = False

    def load_cache(self) -> bool:
        """Apply the cached table, if any; True when one was found."""
        if self.cache is None:
            return False
        cached = self.cache.load()
        if cached is None:
            return False
        self.apply(cached.value)
        self.etag = cached.etag or None
        logger.info("serving %d cached route(s) from %s", len(cached.value.routes), self.cache.path)
        return True

    async def refresh(self, wait: float = 0.0) -> bool:
        """Poll once, waiting up to ``wait`` seconds for a change; True when a new table was
        applied. Failures are logged once per outage."""
        try:
            fetched = await self.source.fetch(self.etag, wait)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the API must leave the router serving
            if not self.failing:
                self.failing = True
                logger.warning(
                    "cannot refresh the route table (%s); serving the last table until the API "
                    "answers",
                    exc,
                )
            return False
        if self.failing:
            self.failing = False
            logger.info("the route table API answers again")
        if fetched is None or (fetched.etag and fetched.etag == self.etag):
            return False
        self.apply(fetched.value)
        self.etag = fetched.etag or None
        if self.cache is not None:
            try:
                await asyncio.to_thread(self.cache.save, fetched)
            except OSError as exc:
                logger.warning("cannot cache the route table in %s: %s", self.cache.path, exc)
        return True

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            if await self.refresh(self.wait):
                continue  # at once: the next answer is held until the table changes again
            pause = self.interval if self.failing else started + self.interval - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
