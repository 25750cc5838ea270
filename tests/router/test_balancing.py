"""Choosing a dyno: random or fewest in flight, quarantine of dynos that fail, Heroku's backlog."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from dockyard.domain import dataplane
from dockyard.router import errors
from dockyard.router.balancing import pick_fewest, pick_random
from dockyard.router.exchange import AppState, Endpoint

from .support import DOMAIN, Backend, BackendFactory, RouterFactory, refused_address, route, table

HOST = f"myapp.{DOMAIN}"


def _endpoints(count: int) -> tuple[Endpoint, ...]:
    app = AppState("app")
    return tuple(
        Endpoint(dataplane.Backend(f"web.{i}", f"127.0.0.1:{4000 + i}"), app) for i in range(count)
    )


def test_random_spreads_over_every_dyno_and_skips_quarantined_and_full_ones() -> None:
    eps = _endpoints(3)
    eps[0].quarantined = 100.0
    eps[1].inflight = 50
    picked = {pick_random(eps, 10.0, 50) for _ in range(200)}
    assert picked == {eps[2]}
    eps[1].inflight = 0
    assert {pick_random(eps, 10.0, 50) for _ in range(200)} == {eps[1], eps[2]}
    assert {pick_random(eps, 101.0, 0) for _ in range(200)} == set(eps), "quarantine ends"


def test_fewest_in_flight_takes_the_least_busy_dyno() -> None:
    eps = _endpoints(3)
    eps[0].inflight, eps[1].inflight, eps[2].inflight = 4, 1, 2
    assert pick_fewest(eps, 0.0, 50) is eps[1]
    eps[1].quarantined = 5.0
    assert pick_fewest(eps, 0.0, 50) is eps[2]
    eps[2].inflight = eps[0].inflight = 50
    assert pick_fewest(eps, 0.0, 50) is None, "every dyno that may take one is full"


@pytest.mark.anyio
async def test_a_refusing_dyno_is_quarantined_and_requests_go_to_the_others(
    backend: Backend, router_factory: RouterFactory
) -> None:
    dead = refused_address()
    async with (
        router_factory(
            table(route("myapp", [dataplane.Backend("web.1", dead), backend.address]))
        ) as h,
        httpx.AsyncClient() as client,
    ):
        statuses = [
            (await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})).status_code
            for _ in range(20)
        ]
        endpoint = h.router.proxy.endpoints[dead]
        messages = await h.log_messages()
    assert statuses == [200] * 20
    assert endpoint.quarantined > 0
    assert endpoint.failure is errors.H21
    assert endpoint.inflight == 0
    assert all("dyno=web.1" not in m for m in messages)


@pytest.mark.anyio
async def test_when_every_dyno_is_quarantined_requests_fail_at_once_with_its_code(
    router_factory: RouterFactory,
) -> None:
    dead = refused_address()
    async with (
        router_factory(table(route("myapp", [dead])), quarantine=60.0) as h,
        httpx.AsyncClient() as client,
    ):
        first = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        second = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        messages = await h.log_messages()
    assert (first.status_code, second.status_code) == (503, 503)
    assert [m.split(" desc")[0] for m in messages] == ["at=error code=H21"] * 2


@pytest.mark.anyio
async def test_fewest_in_flight_sends_new_requests_to_the_idle_dyno(
    make_backend: BackendFactory, router_factory: RouterFactory
) -> None:
    slow, fast = make_backend("slow"), make_backend("fast")
    async with (
        router_factory(
            table(route("myapp", [slow.address, fast.address])), balancing="fewest-in-flight"
        ) as h,
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"http://127.0.0.1:{h.port}"
        held = [asyncio.ensure_future(client.get(f"{url}/slow", headers={"Host": HOST}))]
        while not (slow.seen or fast.seen):
            await asyncio.sleep(0.01)
        busy = slow if slow.seen else fast
        idle = fast if busy is slow else slow
        answers = [
            (await client.get(f"{url}/quick", headers={"Host": HOST})).json()["backend"]
            for _ in range(5)
        ]
        busy.server.release.set()
        await asyncio.gather(*held)
    assert answers == [idle.name] * 5


@pytest.mark.anyio
async def test_over_the_in_flight_cap_requests_wait_in_the_backlog_and_beyond_it_get_h11(
    backend: Backend, router_factory: RouterFactory
) -> None:
    async with (
        router_factory(table(route("myapp", [backend.address])), max_inflight=2) as h,
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"http://127.0.0.1:{h.port}/slow"
        pending = [asyncio.ensure_future(client.get(url, headers={"Host": HOST})) for _ in range(4)]
        while len(h.router.proxy.apps["id-myapp"].backlog) < 2 or len(backend.seen) < 2:
            await asyncio.sleep(0.01)
        refused = await client.get(url, headers={"Host": HOST})
        sent_before_release = len(backend.seen)
        backend.server.release.set()
        served = await asyncio.gather(*pending)
        messages = await h.log_messages()
    assert refused.status_code == 503
    assert b"H11" in refused.content
    assert sent_before_release == 2
    assert [r.status_code for r in served] == [200] * 4
    assert any(m.startswith('at=error code=H11 desc="Backlog too deep"') for m in messages)
    assert h.router.proxy.endpoints[backend.address].inflight == 0
