"""Where the route table comes from, and how it survives an API outage.

The router polls a ``RouteSource`` (the API's ``/internal/v1/routes`` with ``If-None-Match``),
applies each new table at once (the proxy swaps one dict), and caches it on disk so a router that
starts while the API is down still serves the last table it knew. A failed poll is logged once per
outage, and the recovery once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from dockyard._util.secretfile import ensure_secret_file
from dockyard.client.dataplane import DataPlaneClient, Versioned
from dockyard.client.http import AsyncApiClient
from dockyard.domain.dataplane import RouteTable
from dockyard.errors import UnavailableError
from dockyard.settings import Settings

logger = logging.getLogger("dockyard.router")

CACHE_FILE = "routes.json"


class RouteSource(Protocol):
    async def fetch(self, etag: str | None) -> Versioned[RouteTable] | None:
        """The current table, or None when unchanged since ``etag``; raises when unreachable."""
        ...


class ApiRouteSource:
    """The route table as the control plane publishes it."""

    def __init__(self, api: AsyncApiClient) -> None:
        self._api = api
        self._client = DataPlaneClient(api)

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiRouteSource:
        token = ensure_secret_file(settings.internal_token_file)
        return cls(AsyncApiClient(settings.api_url, token))

    async def fetch(self, etag: str | None) -> Versioned[RouteTable] | None:
        return await self._client.route_table(etag)

    async def aclose(self) -> None:
        await self._api.aclose()


class FakeRouteSource:
    """An in-memory source for tests: ``publish`` a table, set ``failing`` to play an API outage."""

    def __init__(self, table: RouteTable | None = None) -> None:
        self._table = table or RouteTable()
        self._version = 1
        self.failing = False
        self.fetches = 0

    def publish(self, table: RouteTable) -> None:
        self._table = table
        self._version += 1

    async def fetch(self, etag: str | None) -> Versioned[RouteTable] | None:
        self.fetches += 1
        if self.failing:
            raise UnavailableError("cannot reach the Dockyard API (FakeRouteSource.failing is set)")
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
    """Polls ``source`` every ``interval`` seconds and hands each new table to ``apply``."""

    def __init__(
        self,
        source: RouteSource,
        apply: Callable[[RouteTable], None],
        *,
        cache: RouteCache | None,
        interval: float,
    ) -> None:
        self.source = source
        self.apply = apply
        self.cache = cache
        self.interval = interval
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

    async def refresh(self) -> bool:
        """Poll once; True when a new table was applied. Failures are logged once per outage."""
        try:
            fetched = await self.source.fetch(self.etag)
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
        if fetched is None:
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
            await self.refresh()
            await asyncio.sleep(self.interval)
