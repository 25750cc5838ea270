"""The logs process: one ordered stream per app from its segment files into the ring buffer, the
``--tail`` sessions (a slow one cut with L11) and the drains; the history survives its restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.logs import channel
from dockyard.logs.drains import DrainConfig
from dockyard.logs.drainurl import AddressGuard
from dockyard.logs.query import LogFilter
from dockyard.logs.server import LogRouter
from dockyard.logs.store import FileLogStore
from dockyard.settings import LogsSettings

from .support import SyslogReceiver

pytestmark = pytest.mark.anyio


def line(n: int, source: str = "app", dyno: str = "web.1") -> str:
    return f"2026-03-01T12:00:00.{n:06d}+00:00 {source}[{dyno}]: line {n}\n"


@contextlib.asynccontextmanager
async def running(root: Path, **settings: object) -> AsyncIterator[LogRouter]:
    router = LogRouter(
        FileLogStore(root),
        LogsSettings(allow_private_drains=True, **settings),  # type: ignore[arg-type]
        guard=AddressGuard(allow_private=True),
    )
    await router.start()
    try:
        yield router
    finally:
        await router.stop()


async def collect(stream: AsyncIterator[bytes], count: int, timeout: float = 10) -> list[str]:
    got = b""
    async with asyncio.timeout(timeout):
        async for chunk in stream:
            got += chunk
            if got.count(b"\n") >= count:
                break
    return got.decode().splitlines()


async def test_recent_lines_come_from_the_ring_buffer_with_filters(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    for n in range(5):
        store.append_text("app-1", line(n))
    store.append_text("app-1", line(5, "heroku", "router"))
    async with running(tmp_path, buffer_lines=4):
        lines = await collect(
            channel.stream(store, "app-1", lines=10, tail=False, wanted=LogFilter()), 4
        )
        assert [x.rsplit(" ", 1)[1] for x in lines] == ["2", "3", "4", "5"]
        routed = channel.stream(
            store, "app-1", lines=10, tail=False, wanted=LogFilter(source="heroku")
        )
        assert await collect(routed, 1) == [line(5, "heroku", "router").strip()]


async def test_a_tail_gets_the_newest_lines_then_every_new_line_in_order(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append_text("app-1", line(0))
    async with running(tmp_path):
        tail = channel.stream(store, "app-1", lines=1, tail=True, wanted=LogFilter())
        first = await anext(tail)
        assert first.decode() == line(0)
        for n in range(1, 201):
            store.append_text("app-1", line(n))
        rest = await collect(tail, 200)
        assert rest == [line(n).strip() for n in range(1, 201)]
        await tail.aclose()


async def test_a_tail_filters_by_dyno_type_and_text(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    async with running(tmp_path):
        tail = channel.stream(
            store, "app-1", lines=0, tail=True, wanted=LogFilter(dyno="web", grep="line 3")
        )
        task = asyncio.ensure_future(collect(tail, 1))
        await asyncio.sleep(0.1)
        store.append_text("app-1", line(1, dyno="worker.1") + line(3, dyno="worker.1"))
        store.append_text("app-1", line(2, dyno="web.2") + line(3, dyno="web.2"))
        assert await task == [line(3, dyno="web.2").strip()]


async def test_a_slow_tail_is_cut_with_l11_and_the_others_keep_up(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    async with running(tmp_path, tail_buffer_bytes=256 << 10) as router:
        # A client that connects, asks to tail, and never reads.
        reader, writer = await asyncio.open_unix_connection(str(store.session_path))
        writer.write(json.dumps({"op": "tail", "app": "app-1", "lines": 0}).encode() + b"\n")
        await writer.drain()
        fast = channel.stream(store, "app-1", lines=0, tail=True, wanted=LogFilter())
        fast_task = asyncio.ensure_future(collect(fast, 20_001, timeout=30))
        await asyncio.sleep(0.1)
        payload = "x" * 200
        for n in range(20_000 // 100):
            store.append_text(
                "app-1",
                "".join(
                    f"2026-03-01T12:00:00.000000+00:00 app[web.1]: {n}.{k} {payload}\n"
                    for k in range(100)
                ),
            )
            await asyncio.sleep(0)
        got = await fast_task
        assert len([x for x in got if " app[web.1]: " in x]) == 20_000  # the slow one's L11 too
        assert got[0].split(": ", 1)[1].startswith("0.0 ")
        assert router.tails["app-1"] and len(router.tails["app-1"]) == 1  # only the fast one
        slow = b""
        async with asyncio.timeout(10):
            while chunk := await reader.read(1 << 16):
                slow += chunk
        last = slow.decode().rstrip("\n").rsplit("\n", 1)[-1]
        assert "heroku[logplex]: Error L11 (Tail buffer overflow)" in last
        writer.close()
        stream = [x.message for x in store.tail("app-1", 100_000)]
        assert any(m.startswith("Error L11") for m in stream)


async def test_drains_get_every_line_and_a_stopped_drain_does_not_slow_the_tail(
    tmp_path: Path,
) -> None:
    store = FileLogStore(tmp_path)
    receiver = await SyslogReceiver().start()
    accepted: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await asyncio.sleep(3600)

    hanging = await asyncio.start_server(never_read, "127.0.0.1", 0)
    hanging_port = hanging.sockets[0].getsockname()[1]
    async with running(tmp_path) as router:
        router.set_drains(
            [
                DrainConfig("d1", "app-1", "d.one", f"syslog://127.0.0.1:{receiver.port}"),
                DrainConfig("d2", "app-1", "d.two", f"syslog://127.0.0.1:{hanging_port}"),
            ]
        )
        async with asyncio.timeout(10):
            while not all(d.stats.connected for d in router.drains.values()):
                await asyncio.sleep(0.01)
        tail = channel.stream(store, "app-1", lines=0, tail=True, wanted=LogFilter())
        tail_task = asyncio.ensure_future(collect(tail, 30_000, timeout=30))
        await asyncio.sleep(0.1)
        for n in range(300):
            store.append_text(
                "app-1",
                "".join(
                    f"2026-03-01T12:00:00.000000+00:00 app[web.1]: {n}.{k} " + "y" * 300 + "\n"
                    for k in range(100)
                ),
            )
            await asyncio.sleep(0)
        got = await tail_task
        assert len(got) >= 30_000
        received = await receiver.wait_for(30_000, timeout=20)
        messages = [m for m in received if b" heroku logplex " not in m]  # L10 of the other
        assert [m.split(b" - - ")[1].split(b" ")[0] for m in messages[:30_000]] == [
            f"{n}.{k}".encode() for n in range(300) for k in range(100)
        ]
        assert messages[0].startswith(b"<190>1 2026-03-01T12:00:00.000000+00:00 d.one app web.1")
        stuck = router.drains["d2"]
        assert stuck.stats.dropped > 0
        assert len(stuck.buffer) <= 1024  # type: ignore[attr-defined]
        history = [x.message for x in store.tail("app-1", 100_000)]
        assert any(m.startswith("Error L10 (output buffer overflow): ") for m in history)
    hanging.close()
    for writer in accepted:
        writer.transport.abort()
    await hanging.wait_closed()
    await receiver.close()


async def test_the_ring_buffer_is_refilled_from_the_history_after_a_restart(
    tmp_path: Path,
) -> None:
    store = FileLogStore(tmp_path)
    async with running(tmp_path):
        for n in range(10):
            store.append_text("app-1", line(n))
    async with running(tmp_path) as router:
        assert len(router.buffer("app-1")) == 10
        lines = await collect(
            channel.stream(store, "app-1", lines=3, tail=False, wanted=LogFilter()), 3
        )
        assert lines == [line(n).strip() for n in (7, 8, 9)]


async def test_retention_rotates_and_prunes_at_the_limits(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    async with running(tmp_path, max_app_bytes=256 << 10, segment_bytes=64 << 10) as router:
        text = "".join(line(n) + "" for n in range(1000))
        for _ in range(20):
            store.append_text("app-1", text)
            store.append_text("quiet", line(1))
            await asyncio.sleep(0.01)
        async with asyncio.timeout(10):
            while router.followers["app-1"].pending_bytes():
                await asyncio.sleep(0.01)
        router.enforce_retention()
        assert store.history_bytes("app-1") <= 256 << 10
        assert len(store.closed_segments("app-1")) >= 2
        assert len(store.tail("quiet", 100)) == 20


async def test_status_and_drain_changes_over_the_socket(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    async with running(tmp_path):
        store.append_text("app-1", line(1))
        await asyncio.sleep(0.05)
        status = await asyncio.to_thread(channel.status, store)
        assert status["lines_in"] >= 0
        assert await asyncio.to_thread(channel.drains_changed, store)
    assert not channel.drains_changed(store)  # nobody listens any more
