"""Waking sleeping apps through the agent's socket (the real ``agent.wake.WakeServer``, so both sides
of the contract meet), and the last-request files the agent's idling reads."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from dockyard.agent.wake import WakeServer
from dockyard.router.wake import touch_last_requests

from .support import DOMAIN, Backend, RouterFactory, make_settings, route, table

pytestmark = pytest.mark.anyio

HOST = f"myapp.{DOMAIN}"


async def test_concurrent_requests_for_a_sleeping_app_share_one_wake_up_and_are_served(
    backend: Backend, router_factory: RouterFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    wakes: list[str] = []

    async def waker(app_id: str) -> list[dict[str, str]]:
        wakes.append(app_id)
        await asyncio.sleep(0.3)  # the dyno boots
        return [{"dyno": "web.1", "address": backend.address}]

    agent = WakeServer(settings.agent_socket, waker)
    await agent.start()
    try:
        async with (
            router_factory(table(route("myapp", [], web_quantity=1))) as h,
            httpx.AsyncClient(timeout=10) as client,
        ):
            url = f"http://127.0.0.1:{h.port}/"
            responses = await asyncio.gather(
                *(client.get(url, headers={"Host": HOST}) for _ in range(5))
            )
            messages = await h.log_messages()
    finally:
        await agent.close()
    assert [r.status_code for r in responses] == [200] * 5
    assert wakes == ["id-myapp"]
    assert all("dyno=web.1" in m for m in messages)


async def test_an_app_that_does_not_wake_is_h20_after_the_boot_wait(
    router_factory: RouterFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)

    async def waker(app_id: str) -> list[dict[str, str]]:
        raise TimeoutError

    agent = WakeServer(settings.agent_socket, waker)
    await agent.start()
    try:
        async with (
            router_factory(table(route("myapp", [], web_quantity=1)), boot_wait=0.3) as h,
            httpx.AsyncClient(timeout=10) as client,
        ):
            started = time.monotonic()
            response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
            waited = time.monotonic() - started
            messages = await h.log_messages()
    finally:
        await agent.close()
    assert response.status_code == 503
    assert waited >= 0.3
    assert messages[0].startswith('at=error code=H20 desc="App boot timeout"')


async def test_requests_set_the_apps_last_request_file(
    backend: Backend, router_factory: RouterFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    path = settings.last_request_dir / "id-myapp"
    async with (
        router_factory(table(route("myapp", [backend.address]))) as h,
        httpx.AsyncClient() as client,
    ):
        before = time.time()
        response = await client.get(f"http://127.0.0.1:{h.port}/", headers={"Host": HOST})
        for _ in range(200):
            if path.exists():
                break
            await asyncio.sleep(0.01)
    assert response.status_code == 200
    assert path.stat().st_mtime >= before - 1
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_touching_updates_existing_files_and_skips_bad_ids(tmp_path: Path) -> None:
    directory = tmp_path / "last-request"
    touch_last_requests(directory, ["app-1", "../escape", ""], 1000.0)
    touch_last_requests(directory, ["app-1"], 2000.0)
    assert sorted(p.name for p in directory.iterdir()) == ["app-1"]
    assert (directory / "app-1").stat().st_mtime == 2000.0
