"""Dyno start overhead: time from "start" to the dyno's $PORT accepting connections, for a minimal HTTP server
started as a runc dyno, divided by the same for that server started as a bare process (target: <= 1.3).

Both are timed the same way: from the start call until a listening socket on $PORT shows up in the socket table
of the process's network namespace (``/proc/<pid>/net/tcp``; a listening socket accepts connections into its
backlog), polled every millisecond. Runs alternate (bare, runc, bare, runc, ...) and the medians are compared,
so a busy machine slows both alike. Needs root, runc and a stack image: ``$DOCKYARD_RUNTIME_STACKS_DIR``, else
the test suite's cached one (``/var/cache/dockyard-tests/stacks-*``), else one is built there (minutes, once).

Prints one line: ``dynos: start to $PORT accepting, runc X ms, bare Y ms (median of N), overhead +Z ms, ratio R
(target <= 1.3)``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dockyard._util import proc
from dockyard.runtime.base import DynoSpec
from dockyard.runtime.runc import RuncRuntime, listening_ports
from dockyard.runtime.stack import STACK_PACKAGES, StackImages
from dockyard.settings import Settings, load_settings
from dockyard.slug.image import make_image
from dockyard.slug.mount import mount_points
from dockyard.slug.store import SlugStore

ROUNDS = 15
BARE_PYTHON = "/usr/bin/python3"
"""Debian's Python, as in the stack image (not a version manager's shim, which adds its own start-up)."""
TIMEOUT = 30.0
TEST_CACHE = Path("/var/cache/dockyard-tests")
SERVER = """\
import os, socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(os.environ["PORT"])))
server.listen(64)
while True:
    conn, _ = server.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
    conn.close()
"""


def stacks_dir() -> Path:
    configured = os.environ.get("DOCKYARD_RUNTIME_STACKS_DIR")
    if configured:
        return Path(configured)
    packages = hashlib.sha256(",".join(STACK_PACKAGES).encode()).hexdigest()[:10]
    return TEST_CACHE / f"stacks-{packages}"


def settings_for(base: Path) -> Settings:
    return load_settings(
        {
            "DOCKYARD_CONFIG": os.devnull,
            "DOCKYARD_DATA_DIR": str(base / "data"),
            "DOCKYARD_RUNTIME_STACKS_DIR": str(stacks_dir()),
            "DOCKYARD_RUNTIME_RUN_DIR": str(base / "run"),
        }
    )


def wait_listening(pid: int, port: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while port not in listening_ports(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listened on port {port} within {TIMEOUT:g} s")
        time.sleep(0.001)


def time_bare(source: Path, port: int) -> float:
    started = time.monotonic()
    child = proc.spawn(
        [BARE_PYTHON, "server.py"],
        cwd=source,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port)},
    )
    try:
        wait_listening(child.pid, port)
        return time.monotonic() - started
    finally:
        child.kill()
        child.wait()


def time_runc(runtime: RuncRuntime, slug: str) -> float:
    spec = DynoSpec(
        id=str(uuid.uuid4()),
        app_id="bench",
        app_name="bench",
        name="web.1",
        process_type="web",
        release_version=1,
        slug_digest=slug,
        command="python3 server.py",
        env={},
        size="standard-1x",
    )
    started = time.monotonic()
    dyno = runtime.start(spec)
    pid = int((runtime.root / spec.id / "pid").read_text())
    try:
        wait_listening(pid, dyno.port)
        return time.monotonic() - started
    finally:
        runtime.stop(spec.id, timeout=5)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(
    rounds: int, bare: Callable[[], float], runc: Callable[[], float]
) -> tuple[float, float]:
    bare(), runc()  # warm the page cache and the mounts
    bare_times, runc_times = [], []
    for _ in range(rounds):
        bare_times.append(bare())
        runc_times.append(runc())
    return statistics.median(bare_times), statistics.median(runc_times)


def main() -> int:
    logging.getLogger("dockyard").setLevel(
        logging.ERROR
    )  # one result line, not the runtime's notices
    if os.geteuid() != 0 or shutil.which("runc") is None:
        print("dynos: skipped (needs root and runc)")
        return 0
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        settings = settings_for(base)
        images = StackImages(settings)
        if images.current() is None:
            print(
                f"building the stack image in {stacks_dir()} (once; a few minutes)…",
                file=sys.stderr,
            )
            images.build(deb_cache=stacks_dir().parent / "debs")
        source = base / "app"
        source.mkdir()
        (source / "server.py").write_text(SERVER)
        image = base / "app.squashfs"
        make_image(source, image)
        slug = SlugStore(settings.slugs_dir).put(image)[0]
        runtime = RuncRuntime(settings, network="none")
        bare_s, runc_s = measure(
            ROUNDS, lambda: time_bare(source, free_port()), lambda: time_runc(runtime, slug)
        )
        runtime.release_unused(set())
    finally:
        for point in sorted(mount_points(), key=lambda p: len(p.parts), reverse=True):
            if base in point.parents:
                proc.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"dynos: start to $PORT accepting, runc {runc_s * 1000:.0f} ms, bare {bare_s * 1000:.0f} ms "
        f"(median of {ROUNDS}), overhead {(runc_s - bare_s) * 1000:+.0f} ms, ratio {runc_s / bare_s:.2f} "
        "(target <= 1.3)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
