"""``DataPlaneClient``: the agent's and the router's requests, long polls included."""

from __future__ import annotations

import httpx
import pytest

from dockyard.client.dataplane import DataPlaneClient
from dockyard.client.http import AsyncApiClient
from dockyard.domain.dataplane import RouteTable

pytestmark = pytest.mark.anyio


class Api:
    """An API that records what it is asked and answers 304 to a current ETag."""

    def __init__(self, name: str, seen: list[tuple[str, str]]) -> None:
        self.name = name
        self.seen = seen

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((self.name, str(request.url)))
        if request.headers.get("If-None-Match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        if request.url.path == "/internal/v1/routes":
            return httpx.Response(200, json={"routes": []}, headers={"ETag": '"v1"'})
        return httpx.Response(200, json={"dynos": []}, headers={"ETag": '"v1"'})


def _client(seen: list[tuple[str, str]], *, long_polls: bool) -> DataPlaneClient:
    def api(name: str) -> AsyncApiClient:
        return AsyncApiClient(
            "http://api.test", "t", transport=httpx.MockTransport(Api(name, seen))
        )

    return DataPlaneClient(api("api"), long_polls=api("long") if long_polls else None)


async def test_a_poll_with_an_etag_is_held_by_the_api_through_the_long_poll_client() -> None:
    seen: list[tuple[str, str]] = []
    client = _client(seen, long_polls=True)

    first = await client.route_table(None, wait=10)
    unchanged = await client.route_table('"v1"', wait=10)
    dynos = await client.desired_dynos("h1", '"v1"', wait=2.5)
    await client.aclose()

    assert first is not None and first.value == RouteTable() and first.etag == '"v1"'
    assert unchanged is None and dynos is None
    assert seen == [
        ("api", "http://api.test/internal/v1/routes"),  # nothing to compare with: no hold
        ("long", "http://api.test/internal/v1/routes?wait=10"),
        ("long", "http://api.test/internal/v1/hosts/h1/desired-dynos?wait=2.5"),
    ]


async def test_without_a_long_poll_client_nothing_is_held() -> None:
    seen: list[tuple[str, str]] = []
    client = _client(seen, long_polls=False)

    assert await client.route_table('"v1"', wait=10) is None
    await client.aclose()

    assert seen == [("api", "http://api.test/internal/v1/routes")]
