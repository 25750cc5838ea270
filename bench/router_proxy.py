"""Requests per second through the router against the same back end reached directly.

A tiny back end (asyncio on uvloop, ~100-byte responses) and the router run in their own processes; a
keep-alive load generator (wrk when installed, else a Python client) measures both paths in interleaved
rounds, and the median ratio is reported. On a machine with two or more cores the router gets one core
and the back end and the load generator share another, as in "proxy alone on one core" of the router
performance notes; absolute numbers move between runs, the ratio is what to compare.

Prints one line: ``router_proxy: N req/s through router, M req/s direct, ratio R``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from dockyard._util import proc
from dockyard.domain.dataplane import Backend, Route, RouteTable
from dockyard.router.proxy import ProxyOptions
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import RouterServer, serve
from dockyard.settings import RouterSettings, Settings
from dockyard.types import AppId, AppName

DOMAIN = "dockyard.localhost"
HOST = f"bench.{DOMAIN}"
CONNECTIONS = 64
ROUND_SECONDS = 4
ROUNDS = 3
BODY = b"Hello from a tiny dyno! " * 3
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%b" % (
    len(BODY),
    BODY,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


# --- the back end: answers every request head it sees with one canned response


class _Backend(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
        if count and self.transport is not None:
            self.transport.write(RESPONSE * count)


def _run_backend(port: int, cpu: int | None, ready: EventType) -> None:
    _pin(cpu)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Backend, "127.0.0.1", port, backlog=1024)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        ready.set()
        await stop.wait()
        server.close()

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(main())


# --- the router, as ``serve`` runs it


def _run_router(
    port: int, backend_port: int, data_dir: str, cpu: int | None, ready: EventType
) -> None:
    _pin(cpu)
    settings = Settings(
        data_dir=Path(data_dir),
        domain=DOMAIN,
        router=RouterSettings(host="127.0.0.1", port=port, refresh_interval=3600, tls=False),
    )
    table = RouteTable(
        (
            Route(
                app_id=AppId("bench"),
                app_name=AppName("bench"),
                hostnames=(HOST,),
                backends=(Backend("web.1", f"127.0.0.1:{backend_port}"),),
                web_quantity=1,
            ),
        )
    )

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

        def on_ready(router: RouterServer) -> None:
            async def first_poll() -> None:
                await router.refresh()
                ready.set()

            asyncio.get_running_loop().create_task(first_poll())

        await serve(
            settings, FakeRouteSource(table), ready=on_ready, stop=stop, options=ProxyOptions()
        )

    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(main())


# --- load generators


def _wrk(port: int, seconds: float) -> float:
    result = proc.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{seconds:g}s",
            "-H",
            f"Host: {HOST}",
            f"http://127.0.0.1:{port}/",
        ],
        timeout=seconds + 30,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.text)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{result.text}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.text)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{result.text}")
    return float(match.group(1))


async def _python_load(port: int, seconds: float) -> float:
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    done = 0
    deadline = time.monotonic() + seconds

    async def one_connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
    return done / (time.monotonic() - started)


def _measure(port: int, seconds: float) -> float:
    if shutil.which("wrk"):
        return _wrk(port, seconds)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        return runner.run(_python_load(port, seconds))


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    router_cpu, load_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    backend_port, router_port = _free_port(), _free_port()
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="router-bench-") as data_dir:
        backend_ready, router_ready = ctx.Event(), ctx.Event()
        backend = ctx.Process(target=_run_backend, args=(backend_port, load_cpu, backend_ready))
        router = ctx.Process(
            target=_run_router, args=(router_port, backend_port, data_dir, router_cpu, router_ready)
        )
        backend.start()
        assert backend_ready.wait(10), "the back end did not start"
        router.start()
        assert router_ready.wait(10), "the router did not start"
        _pin(load_cpu)
        try:
            _measure(router_port, 1)  # warm up both paths: pooled connections, caches
            _measure(backend_port, 1)
            direct, through = [], []
            for _ in range(ROUNDS):
                direct.append(_measure(backend_port, ROUND_SECONDS))
                through.append(_measure(router_port, ROUND_SECONDS))
        finally:
            for child in (router, backend):
                if child.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGTERM)
                child.join(10)
    ratio = statistics.median(t / d for t, d in zip(through, direct, strict=True))
    sys.stdout.write(
        f"router_proxy: {statistics.median(through):.0f} req/s through router, "
        f"{statistics.median(direct):.0f} req/s direct, ratio {ratio:.2f}\n"
    )


if __name__ == "__main__":
    main()
