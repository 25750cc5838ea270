"""What the agent and the router ask of the control plane, over ``/internal/v1``.

Both ask with ``If-None-Match`` so an unchanged table costs one small 304, and as long polls: with
``wait`` the API holds the request until the answer differs from that ETag (or ``wait`` seconds
have passed, then 304), so a change reaches the data plane within milliseconds without polling.
Authentication is the platform's internal token (``<data dir>/secrets/internal-token``), not a
user's API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from dockyard.client.http import AsyncApiClient
from dockyard.domain.dataplane import DesiredDyno, DynoReport, RouteTable

T = TypeVar("T")

LONG_POLL = 10.0
"""Seconds a long poll asks the API to hold an unchanged answer. Short enough that an API stopped
on its own (its held polls delay its exit) stops well within the supervisor's 15 s."""
REQUEST_TIMEOUT = 10.0
"""Seconds any request may take beyond the time the API was asked to hold it."""


@dataclass(frozen=True)
class Versioned(Generic[T]):
    value: T
    etag: str


class DataPlaneClient:
    """``api`` serves the ordinary requests; ``long_polls`` the held ones (its timeout must outlast
    the holds). Without ``long_polls`` nothing is held: ``wait`` is ignored and every poll is
    answered at once."""

    def __init__(self, api: AsyncApiClient, *, long_polls: AsyncApiClient | None = None) -> None:
        self.api = api
        self.long_polls = long_polls

    @classmethod
    def connect(cls, url: str, token: str, *, wait: float = LONG_POLL) -> DataPlaneClient:
        """Clients for the API at ``url``: one for reports, one whose timeout outlasts ``wait``."""
        return cls(
            AsyncApiClient(url, token, timeout=REQUEST_TIMEOUT),
            long_polls=AsyncApiClient(url, token, timeout=wait + REQUEST_TIMEOUT),
        )

    async def aclose(self) -> None:
        await self.api.aclose()
        if self.long_polls is not None:
            await self.long_polls.aclose()

    async def _get(self, path: str, etag: str | None, wait: float) -> httpx.Response | None:
        """The answer, or None for a 304."""
        headers = {"If-None-Match": etag} if etag else None
        if wait > 0 and etag and self.long_polls is not None:
            response = await self.long_polls.request(
                "GET", f"{path}?wait={wait:g}", headers=headers
            )
        else:
            response = await self.api.request("GET", path, headers=headers)
        return None if response.status_code == 304 else response

    async def desired_dynos(
        self, host: str, etag: str | None = None, *, wait: float = 0.0
    ) -> Versioned[list[DesiredDyno]] | None:
        """The dynos this host should run, or None when unchanged since ``etag`` (after holding
        for up to ``wait`` seconds)."""
        response = await self._get(f"/internal/v1/hosts/{host}/desired-dynos", etag, wait)
        if response is None:
            return None
        dynos = [DesiredDyno.from_json(d) for d in response.json()["dynos"]]
        return Versioned(dynos, response.headers.get("ETag", ""))

    async def report_dynos(self, host: str, dynos: Sequence[DynoReport]) -> None:
        await self.api.request(
            "PUT", f"/internal/v1/hosts/{host}/dynos", json={"dynos": [d.to_json() for d in dynos]}
        )

    async def route_table(
        self, etag: str | None = None, *, wait: float = 0.0
    ) -> Versioned[RouteTable] | None:
        """The router's table, or None when unchanged since ``etag`` (after holding for up to
        ``wait`` seconds)."""
        response = await self._get("/internal/v1/routes", etag, wait)
        if response is None:
            return None
        return Versioned(RouteTable.from_json(response.json()), response.headers.get("ETag", ""))
