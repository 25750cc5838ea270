"""What the agent and the router ask of the control plane, over ``/internal/v1``.

Both poll with ``If-None-Match`` so an unchanged table costs one small 304. Authentication is the platform's
internal token (``<data dir>/secrets/internal-token``), not a user's API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from dockyard.client.http import AsyncApiClient
from dockyard.domain.dataplane import DesiredDyno, DynoReport, RouteTable

T = TypeVar("T")


@dataclass(frozen=True)
class Versioned(Generic[T]):
    value: T
    etag: str


class DataPlaneClient:
    def __init__(self, api: AsyncApiClient) -> None:
        self.api = api

    async def desired_dynos(
        self, host: str, etag: str | None = None
    ) -> Versioned[list[DesiredDyno]] | None:
        """The dynos this host should run, or None when unchanged since ``etag``."""
        headers = {"If-None-Match": etag} if etag else None
        response = await self.api.request(
            "GET", f"/internal/v1/hosts/{host}/desired-dynos", headers=headers
        )
        if response.status_code == 304:
            return None
        dynos = [DesiredDyno.from_json(d) for d in response.json()["dynos"]]
        return Versioned(dynos, response.headers.get("ETag", ""))

    async def report_dynos(self, host: str, dynos: Sequence[DynoReport]) -> None:
        await self.api.request(
            "PUT", f"/internal/v1/hosts/{host}/dynos", json={"dynos": [d.to_json() for d in dynos]}
        )

    async def route_table(self, etag: str | None = None) -> Versioned[RouteTable] | None:
        """The router's table, or None when unchanged since ``etag``."""
        headers = {"If-None-Match": etag} if etag else None
        response = await self.api.request("GET", "/internal/v1/routes", headers=headers)
        if response.status_code == 304:
            return None
        return Versioned(RouteTable.from_json(response.json()), response.headers.get("ETag", ""))
