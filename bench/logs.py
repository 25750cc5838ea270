"""Sustained log ingest with one ``--tail`` client and one syslog drain attached.

Three processes, as on a platform: a writer that ships dyno output the way the agent does
(``make_lines`` per raw line, one ``FileLogStore.append`` per batch every 10 ms), the logs process
(``LogRouter``: segment files → ring buffer, tail, drain), and this one, which holds the tail
client (on the logs process's session socket) and a real syslog receiver (RFC 6587 octet counting)
and counts what each gets. Prints one line: the rate, lines lost at the tail and at the drain, the
tail's latency (from the line's own timestamp to its arrival), the CPU the writer and the logs
process used, lines per second per core, and the logs process's memory at the start and the end.

    .venv/bin/python bench/logs.py [--rate 60000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

APP = "bench-app"
TICK = 0.01


def run_writer(root: Path, rate: int, seconds: float) -> None:
    from dockyard.logs.line import make_lines
    from dockyard.logs.store import FileLogStore

    store = FileLogStore(root)
    per_tick = max(1, int(rate * TICK))
    written = 0
    start = time.monotonic()
    ticks = int(seconds / TICK)
    for tick in range(ticks):
        now = datetime.now(UTC)
        raws = [
            b'10.1.2.3 - - "GET /orders/%d HTTP/1.1" 200 512 "-" "bench/1.0" rt=0.004'
            % (written + k)
            for k in range(per_tick)
        ]
        store.append(APP, [line for raw in raws for line in make_lines("app", "web.1", raw, now)])
        written += per_tick
        delay = start + (tick + 1) * TICK - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    report = {"written": written, "elapsed": time.monotonic() - start, "cpu": time.process_time()}
    print(json.dumps(report), flush=True)


def run_router(root: Path, port: int) -> None:
    from dockyard.logs.drains import DrainConfig
    from dockyard.logs.drainurl import AddressGuard
    from dockyard.logs.server import LogRouter, _loop_factory
    from dockyard.logs.store import FileLogStore
    from dockyard.settings import LogsSettings

    async def main() -> None:
        router = LogRouter(
            FileLogStore(root),
            LogsSettings(allow_private_drains=True),
            guard=AddressGuard(allow_private=True),
        )
        await router.start()
        router.set_drains([DrainConfig("d1", APP, "d.bench", f"syslog://127.0.0.1:{port}")])
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


async def measure(rate: int, seconds: float) -> str:
    from dockyard.logs.store import FileLogStore
    from dockyard.logs.syslog import parse_octet_frames

    root = Path(tempfile.mkdtemp(prefix="dockyard-bench-logs-"))
    drained = 0
    pending = b""

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal drained, pending
        while chunk := await reader.read(1 << 18):
            frames, pending = parse_octet_frames(pending + chunk)
            drained += len(frames)
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    me = [sys.executable, os.path.abspath(__file__)]
    router = subprocess.Popen([*me, "--role", "router", str(root), str(port)])
    store = FileLogStore(root)
    try:
        for _ in range(200):
            if store.session_path.exists():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the drain connects
        reader, tail_writer = await asyncio.open_unix_connection(str(store.session_path))
        request = {"op": "tail", "app": APP, "lines": 0, "filter": {}}
        tail_writer.write(json.dumps(request).encode() + b"\n")
        await tail_writer.drain()
        tailed = 0
        latencies: list[float] = []

        async def read_tail() -> None:
            nonlocal tailed
            rest = b""
            while chunk := await reader.read(1 << 18):
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                tailed += data.count(b"\n", 0, cut)
                if cut:
                    last = data[: cut - 1].rsplit(b"\n", 1)[-1]
                    stamp = datetime.fromisoformat(last[:32].decode()).timestamp()
                    latencies.append(time.time() - stamp)

        tail_task = asyncio.ensure_future(read_tail())
        rss_start = rss_mb(router.pid)
        cpu_router_start = cpu_seconds(router.pid)
        writer = await asyncio.create_subprocess_exec(
            *me,
            "--role",
            "writer",
            str(root),
            str(rate),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        rss_peak = rss_start
        while writer.returncode is None:
            try:
                await asyncio.wait_for(writer.wait(), 0.5)
            except TimeoutError:
                rss_peak = max(rss_peak, rss_mb(router.pid))
        assert writer.stdout is not None
        report = json.loads(await writer.stdout.read())
        written, elapsed = report["written"], report["elapsed"]
        deadline = time.monotonic() + 15
        while (tailed < written or drained < written) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cpu_router = cpu_seconds(router.pid) - cpu_router_start
        rss_end = rss_mb(router.pid)
        tail_task.cancel()
        tail_writer.close()
    finally:
        router.terminate()
        router.wait()
        server.close()
        await asyncio.sleep(0.2)  # the receiver sees the drain's connection end
        shutil.rmtree(root, ignore_errors=True)
    return json.dumps(
        {
            "written": written,
            "elapsed": elapsed,
            "cpu_writer": report["cpu"],
            "tailed": tailed,
            "drained": drained,
            "latencies": latencies,
            "cpu_router": cpu_router,
            "rss": [rss_start, rss_peak, rss_end],
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=60_000, help="lines per second to write")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        if role == "writer":
            run_writer(Path(rest[0]), int(rest[1]), float(rest[2]))
        elif role == "router":
            run_router(Path(rest[0]), int(rest[1]))
        return 0
    result = json.loads(asyncio.run(measure(args.rate, args.seconds)))
    cpu_writer = result["cpu_writer"]
    written, elapsed = result["written"], result["elapsed"]
    cpu = (cpu_writer + result["cpu_router"]) / elapsed
    latencies = sorted(result["latencies"]) or [float("nan")]
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    rss_start, rss_peak, rss_end = result["rss"]
    print(
        f"logs: {written / elapsed:,.0f} lines/s for {elapsed:.1f} s ({written:,} lines); "
        f"lost: tail {written - result['tailed']:,}, syslog drain {written - result['drained']:,}; "
        f"tail latency p50 {p50:.1f} ms p99 {p99:.1f} ms; "
        f"CPU {cpu:.2f} cores (writer {cpu_writer / elapsed:.2f}, logs process "
        f"{result['cpu_router'] / elapsed:.2f}) = {written / elapsed / cpu:,.0f} lines/s per core; "
        f"logs process RSS {rss_start:.0f} MB at start, {rss_peak:.0f} MB peak, {rss_end:.0f} MB "
        "at end",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
