"""The router against nginx as a reverse proxy, on a static and on a Python back end (issue 5's Speed).

Back ends: nginx serving a ~100-byte file (one worker), and a uvicorn hello-world app (one worker).
Proxies: nginx (``proxy_pass`` with upstream keep-alive, ``router.workers`` worker processes) and
Dockyard's router (the same number of workers, sharing the port with ``SO_REUSEPORT``); both also
measured against going direct. wrk drives 64 connections (and 1, for latency) in interleaved
rounds; medians of ``ROUNDS``. Then 10,000 idle keep-alive connections are opened to the router and
its workers' memory is read. Debian's nginx and wrk are installed with apt when missing.

Prints one line:
``router: static 0.91x nginx, python 1.02x nginx, p99 added 1.1 ms (nginx 1.3 ms), p50 added at one
connection 0.05 ms, 10000 idle connections 41 MB/worker``
``--verbose`` prints every measurement on stderr too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard._util import proc
from dockyard.domain.dataplane import Backend, Route, RouteTable
from dockyard.router.routes import FakeRouteSource
from dockyard.router.server import Bound, Listener, serve
from dockyard.router.workers import run_workers
from dockyard.settings import RouterSettings, Settings
from dockyard.types import AppId, AppName

DOMAIN = "bench.localhost"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
SECONDS = 3
LATENCY_SECONDS = 2
CONNECTIONS = 64
IDLE_CONNECTIONS = 10_000
WORKERS = len(os.sched_getaffinity(0))
BODY = b"Hello from a static dyno! This body is about one hundred bytes long, like a small API answer.\n"
VERBOSE = "--verbose" in sys.argv

PY_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello from a Python dyno!"})
"""


def _say(text: str) -> None:
    if VERBOSE:
        sys.stderr.write(text + "\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-core"), ("wrk", "wrk")) if not _which(tool)]
    if missing:
        _say(f"installing {missing} with apt")
        proc.run(["apt-get", "update", "-qq"], timeout=600)
        proc.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _nginx_conf(tmp: Path, name: str, workers: int, servers: str) -> Path:
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"worker_processes {workers};\ndaemon off;\npid {tmp}/{name}.pid;\n"
        f"error_log {tmp}/{name}.err warn;\nworker_rlimit_nofile 65536;\n"
        "events { worker_connections 16384; }\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp}/{name}-body;\n"
        f" proxy_temp_path {tmp}/{name}-proxy;\n fastcgi_temp_path {tmp}/{name}-fcgi;\n"
        f" uwsgi_temp_path {tmp}/{name}-uwsgi;\n scgi_temp_path {tmp}/{name}-scgi;\n"
        f"{servers}\n}}\n"
    )
    return conf


def _router_worker(table: RouteTable, data_dir: Path) -> object:
    def worker(settings: Settings, sockets: Sequence[Bound]) -> None:
        async def main() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await serve(settings, FakeRouteSource(table), stop=stop, sockets=sockets)

        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            runner.run(main())

    return worker


def _start_router(port: int, table: RouteTable, data_dir: Path) -> int:
    settings = Settings(
        data_dir=data_dir,
        domain=DOMAIN,
        router=RouterSettings(host="127.0.0.1", port=port, refresh_interval=3600, tls=False),
    )
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            worker = _router_worker(table, data_dir)
            run_workers(settings, [Listener("127.0.0.1", port)], WORKERS, worker)  # type: ignore[arg-type]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def _wrk(port: int, host: str, connections: int, seconds: float) -> tuple[float, float, float]:
    """Requests a second, p50 and p99 latency (ms)."""
    result = proc.run(
        [
            _which("wrk") or "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "-H",
            f"Host: {host}",
            f"http://127.0.0.1:{port}/",
        ],
        timeout=seconds + 60,
    )
    text = result.text
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rate is None:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    if re.search(r"Non-2xx or 3xx responses: (\d+)", text) or "Socket errors" in text:
        raise RuntimeError(f"failed requests:\n{text}")
    return float(rate.group(1)), _percentile(text, "50"), _percentile(text, "99")


def _percentile(text: str, which: str) -> float:
    match = re.search(rf"^\s+{which}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if match is None:
        raise RuntimeError(f"no {which}th percentile in wrk's output:\n{text}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


async def _hold_idle(port: int, host: str, count: int) -> list[asyncio.StreamWriter]:
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.I)
        await reader.readexactly(int(length.group(1)) if length else 0)
        writers.append(writer)

    for start in range(0, count, 500):
        await asyncio.gather(*(one() for _ in range(min(500, count - start))))
    return writers


def _idle_memory(router_pid: int, port: int, host: str) -> float:
    async def run() -> float:
        writers = await _hold_idle(port, host, IDLE_CONNECTIONS)
        await asyncio.sleep(2)
        per_worker = max(_rss_mb(pid) for pid in _children(router_pid))
        for writer in writers:
            writer.close()
        return per_worker

    return asyncio.run(run())


@contextlib.contextmanager
def _processes() -> Iterator[list[int]]:
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def main() -> None:
    _ensure_tools()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    ports = {name: _free_port() for name in ("static", "python", "ng_static", "ng_py", "router")}
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp_name, _processes() as pids:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's workers run as another user
        (tmp / "www").mkdir()
        (tmp / "www" / "index.html").write_bytes(BODY)
        backend = _nginx_conf(
            tmp,
            "backend",
            1,
            f" server {{ listen 127.0.0.1:{ports['static']}; root {tmp}/www; "
            "keepalive_requests 1000000; }",
        )
        proxy = _nginx_conf(
            tmp,
            "proxy",
            WORKERS,
            "\n".join(
                f" upstream up_{name} {{ server 127.0.0.1:{ports[name]}; keepalive 128; }}\n"
                f" server {{ listen 127.0.0.1:{ports[f'ng_{short}']}; keepalive_requests 1000000;"
                f" location / {{ proxy_pass http://up_{name}; proxy_http_version 1.1;"
                ' proxy_set_header Connection ""; } }'
                for name, short in (("static", "static"), ("python", "py"))
            ),
        )
        nginx = _which("nginx") or "nginx"
        pids.append(proc.spawn([nginx, "-c", str(backend)]).pid)
        (tmp / "app.py").write_text(PY_APP)
        pids.append(
            proc.spawn(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "app:app",
                    "--app-dir",
                    str(tmp),
                    "--port",
                    str(ports["python"]),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                ]
            ).pid
        )
        pids.append(proc.spawn([nginx, "-c", str(proxy)]).pid)
        table = RouteTable(
            tuple(
                Route(
                    app_id=AppId(name),
                    app_name=AppName(name),
                    hostnames=(),
                    backends=(Backend("web.1", f"127.0.0.1:{ports[name]}"),),
                    web_quantity=1,
                )
                for name in ("static", "python")
            )
        )
        (tmp / "data").mkdir()
        router_pid = _start_router(ports["router"], table, tmp / "data")
        pids.append(router_pid)
        for port in ports.values():
            _wait_port(port)
        time.sleep(0.5)
        hosts = {name: f"{name}.{DOMAIN}" for name in ("static", "python")}
        targets = {
            "static": {
                "direct": ports["static"],
                "nginx": ports["ng_static"],
                "router": ports["router"],
            },
            "python": {
                "direct": ports["python"],
                "nginx": ports["ng_py"],
                "router": ports["router"],
            },
        }
        for backend_name, paths in targets.items():  # warm up: pools, caches
            for port in paths.values():
                _wrk(port, hosts[backend_name], CONNECTIONS, 1)
        rates: dict[tuple[str, str], list[float]] = {}
        p99s: dict[tuple[str, str], list[float]] = {}
        p50s: dict[tuple[str, str], list[float]] = {}
        for round_no in range(ROUNDS):
            for backend_name, paths in targets.items():
                for path, port in paths.items():
                    rate, _, p99 = _wrk(port, hosts[backend_name], CONNECTIONS, SECONDS)
                    _, p50, _ = _wrk(port, hosts[backend_name], 1, LATENCY_SECONDS)
                    key = (backend_name, path)
                    rates.setdefault(key, []).append(rate)
                    p99s.setdefault(key, []).append(p99)
                    p50s.setdefault(key, []).append(p50)
                    _say(
                        f"round {round_no + 1} {backend_name:6} {path:6} {rate:9.0f} req/s "
                        f"p99 {p99:6.2f} ms, p50 at 1 connection {p50:6.3f} ms"
                    )
        memory = _idle_memory(router_pid, ports["router"], hosts["static"])

    def ratio(backend_name: str) -> float:
        return statistics.median(
            r / n
            for r, n in zip(
                rates[(backend_name, "router")], rates[(backend_name, "nginx")], strict=True
            )
        )

    def added(values: dict[tuple[str, str], list[float]], path: str) -> float:
        return statistics.median(
            statistics.median(values[(b, path)]) - statistics.median(values[(b, "direct")])
            for b in targets
        )

    sys.stdout.write(
        f"router: static {ratio('static'):.2f}x nginx, python {ratio('python'):.2f}x nginx, "
        f"p99 added {added(p99s, 'router'):.2f} ms (nginx {added(p99s, 'nginx'):.2f} ms), "
        f"p50 added at one connection {added(p50s, 'router'):.3f} ms "
        f"(nginx {added(p50s, 'nginx'):.3f} ms), "
        f"{IDLE_CONNECTIONS} idle connections {memory:.0f} MB/worker ({WORKERS} workers)\n"
    )


if __name__ == "__main__":
    main()
