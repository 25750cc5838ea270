"""Dynos: start overhead and density of runc dynos.

``start`` (the default): time from "start" to the dyno's $PORT accepting connections, for a minimal HTTP
server started as a runc dyno, divided by the same for that server started as a bare process (target:
<= 1.3). Two kinds of runc start are timed:

- **cold**: ``RuncRuntime.start`` of a new dyno: mounts, bundle, network, ``runc run``, then the app;
- **prepared**: ``RuncRuntime.prepare`` first (off the clock: what the agent does ahead for a start it
  can foresee, a sleeping eco dyno or a crashed one whose back-off is about to end), then ``start``,
  which lets the waiting container run the command (what ``runc start`` does), then the app.

All three are timed the same way: from the start call until a TCP connection to $PORT is accepted,
tried every 0.5 ms (the bare process at 127.0.0.1, a dyno at its address on the dyno network: its own
namespace, veth pair and firewall entries, in a table and address range of the benchmark's own, reached
from the router's source address). Not from the socket tables in ``/proc/<pid>/net/tcp``: the host's holds
every socket of the machine (thousands in TIME_WAIT after a busy hour, 17 ms to read), a dyno's only its
own, which would favour the dyno. Runs alternate (bare, cold, prepared, bare, ...) and medians are
compared, so a busy machine slows all alike. A breakdown goes to stderr. Needs root, runc and a stack image:
``$DOCKYARD_RUNTIME_STACKS_DIR``, else the test suite's cached one (``/var/cache/dockyard-tests/stacks-*``),
else one is built there (minutes, once).

Prints one line: ``dynos: start to $PORT accepting (median of N): bare X ms; runc prepared Y ms, ratio R;
runc cold Z ms, ratio S (target <= 1.3)``.

``density``: a real Dockyard (``dockyard up``, runc dynos, the dyno network; its own data and run
directories, firewall table, address range and host uids) runs a hello-world app (a slug uploaded through
the Platform API: a Python socket server) as two apps (an app may have at most 100 dynos of a type) with 1
web dyno each, then 100 each, idle. The platform's own memory per dyno is what grew between the two, divided
by the dynos added:

- user space: the agent's PSS, each dyno's launcher (``bash``, PID 1 of the dyno, the platform's), the
  files runc and the runtime keep in the run directory (tmpfs), and any other process of the platform;
- the kernel: slab, kernel stacks, page tables and per-CPU data (``/proc/meminfo``: mounts, namespaces,
  the veth pairs, cgroups, nftables entries, processes), less the page tables and stacks of the app's
  own processes (the slab of its task, memory map and open files is left in: a slight overestimate).

The app's own processes (its Python) are not counted. It also checks that no process of the platform
runs per dyno (the dynos' init processes are children of the host's init, not of a supervisor). Kernel
figures are the whole host's: other work on the machine moves them (the load average is printed).

Prints one line: ``dynos: density, 200 idle web dynos: platform X MiB per dyno (agent A, launcher B,
run directory C, kernel D) (target <= 2 MiB); per-dyno platform processes: none``.

    .venv/bin/python bench/dynos.py [start] [--rounds N]
    .venv/bin/python bench/dynos.py density [--dynos 200] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dockyard._util import proc
from dockyard.domain.formation import MAX_DYNOS_PER_APP
from dockyard.runtime.base import DynoSpec
from dockyard.runtime.network import DynoNetwork
from dockyard.runtime.runc import RuncRuntime
from dockyard.runtime.stack import STACK_PACKAGES, StackImages
from dockyard.settings import Settings, load_settings
from dockyard.slug.image import make_image
from dockyard.slug.mount import mount_points
from dockyard.slug.store import SlugStore

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ROUNDS = 15
BARE_PYTHON = "/usr/bin/python3"
"""Debian's Python, as in the stack image (not a version manager's shim, which adds its own start-up)."""
TIMEOUT = 30.0
POLL = 0.0005
SETTLE = 0.1
"""Seconds of rest after each start and stop, so the kernel's clean-up of the last dyno (its network
namespace, mounts, cgroup) does not run during the next measurement."""
TEST_CACHE = Path("/var/cache/dockyard-tests")
SERVER = """\
import os, socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(os.environ["PORT"])))
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


def settings_for(base: Path, **extra: str) -> Settings:
    """Settings of a throw-away Dockyard in ``base``, with a firewall table and an address range of
    its own (so it never touches the host's real dyno network)."""
    number = os.getpid() % 200 + 20
    return load_settings(
        {
            "DOCKYARD_CONFIG": os.devnull,
            "DOCKYARD_DATA_DIR": str(base / "data"),
            "DOCKYARD_RUNTIME_STACKS_DIR": str(stacks_dir()),
            "DOCKYARD_RUNTIME_RUN_DIR": str(base / "run"),
            "DOCKYARD_NETWORK_TABLE": f"dybench{os.getpid()}",
            "DOCKYARD_NETWORK_PRIVATE_RANGE": f"10.96.{number}.0/24",
            **extra,
        }
    )


def load_average() -> str:
    return Path("/proc/loadavg").read_text(encoding="ascii").split()[0]


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A directory dynos' user namespaces can reach; everything mounted below it is unmounted after."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for point in sorted(mount_points(), key=lambda p: len(p.parts), reverse=True):
            if base in point.parents:
                proc.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def dyno_network(settings: Settings) -> Iterator[DynoNetwork]:
    """The benchmark's own dyno network (table and range), removed afterwards with every lease."""
    network = DynoNetwork(settings)
    network.setup_host()
    try:
        yield network
    finally:
        for dyno_id in network.attachments():
            with contextlib.suppress(Exception):
                network.detach(dyno_id)
        network.teardown_host()


def ensure_stack(settings: Settings) -> None:
    images = StackImages(settings)
    if images.current() is None:
        print(f"building the stack image in {stacks_dir()} (once; minutes)…", file=sys.stderr)
        images.build(deb_cache=stacks_dir().parent / "debs")


def hello_slug(base: Path, settings: Settings, server: str = SERVER) -> tuple[Path, str]:
    """A slug holding ``server.py``; returns its source directory and digest."""
    source = base / "app"
    source.mkdir()
    (source / "server.py").write_text(server)
    image = base / "app.squashfs"
    make_image(source, image)
    return source, SlugStore(settings.slugs_dir).put(image)[0]


def dyno_spec(slug: str, *, app: str = "bench", name: str = "web.1") -> DynoSpec:
    return DynoSpec(
        id=str(uuid.uuid4()),
        app_id=app,
        app_name=app,
        name=name,
        process_type="web",
        release_version=1,
        slug_digest=slug,
        command="python3 server.py",
        env={},
        size="standard-1x",
    )


# -- start overhead --------------------------------------------------------------------------------


class TimedNetwork:
    """The dyno network, timing ``attach`` (the runtime's ``Network``)."""

    def __init__(self, network: DynoNetwork) -> None:
        self.network = network
        self.last = 0.0

    def attach(self, dyno_id: str, app_id: str, *, port: int | None) -> Any:
        started = time.perf_counter()
        try:
            return self.network.attach(dyno_id, app_id, port=port)
        finally:
            self.last = time.perf_counter() - started

    def detach(self, dyno_id: str) -> None:
        self.network.detach(dyno_id)


class TimedRuncRuntime(RuncRuntime):
    """``RuncRuntime`` noting how long its ``runc`` command took (for the breakdown only)."""

    last_runc = 0.0

    def _run(self, *args: Any, **kwargs: Any) -> tuple[int, int | None]:
        started = time.perf_counter()
        try:
            return super()._run(*args, **kwargs)
        finally:
            self.last_runc = time.perf_counter() - started


@dataclass
class Samples:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.values.setdefault(name, []).append(seconds)

    def ms(self, name: str) -> float:
        return statistics.median(self.values.get(name) or [0.0]) * 1000


def wait_accepting(address: str) -> float:
    """Try to connect to ``host:port`` every ``POLL`` until a connection is accepted; the moment."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return time.perf_counter()
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"nothing accepted connections at {address} within {TIMEOUT:g} s"
                ) from exc
            time.sleep(POLL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_bare(source: Path, samples: Samples) -> None:
    port = free_port()
    started = time.perf_counter()
    child = proc.spawn(
        [BARE_PYTHON, "server.py"],
        cwd=source,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port)},
    )
    try:
        samples.add("bare", wait_accepting(f"127.0.0.1:{port}") - started)
    finally:
        child.kill()
        child.wait()
        time.sleep(SETTLE)


def time_cold(
    runtime: TimedRuncRuntime, network: TimedNetwork, slug: str, samples: Samples
) -> None:
    spec = dyno_spec(slug)
    started = time.perf_counter()
    dyno = runtime.start(spec)
    returned = time.perf_counter()
    try:
        listening = wait_accepting(dyno.address)
        samples.add("cold", listening - started)
        samples.add("cold: runc run", runtime.last_runc)
        attach = network.last
        samples.add("cold: network", attach)
        samples.add("cold: mounts, bundle, record", returned - started - runtime.last_runc - attach)
        samples.add("cold: runc returned → accepting", listening - returned)
    finally:
        runtime.stop(spec.id, timeout=5)
        time.sleep(SETTLE)


def time_prepared(runtime: TimedRuncRuntime, slug: str, samples: Samples) -> None:
    spec = dyno_spec(slug)
    begun = time.perf_counter()
    runtime.prepare(spec)
    samples.add("prepare (ahead, off the clock)", time.perf_counter() - begun)
    time.sleep(SETTLE)  # the start does not overlap what runc create left running
    started = time.perf_counter()
    dyno = runtime.start(spec)
    returned = time.perf_counter()
    try:
        listening = wait_accepting(dyno.address)
        samples.add("prepared", listening - started)
        samples.add("prepared: start (the exec FIFO)", returned - started)
        samples.add("prepared: start returned → accepting", listening - returned)
    finally:
        runtime.stop(spec.id, timeout=5)
        time.sleep(SETTLE)


def bench_start(rounds: int) -> str:
    with scratch_dir() as base:
        settings = settings_for(base)
        ensure_stack(settings)
        source, slug = hello_slug(base, settings)
        with dyno_network(settings) as host_network:
            network = TimedNetwork(host_network)
            runtime = TimedRuncRuntime(settings, network=network)
            samples = Samples()
            load_before = load_average()
            for _ in range(2):  # warm the page cache, the slug and stack mounts
                time_bare(source, Samples())
                time_cold(runtime, network, slug, Samples())
                time_prepared(runtime, slug, Samples())
            for _ in range(rounds):
                time_bare(source, samples)
                time_cold(runtime, network, slug, samples)
                time_prepared(runtime, slug, samples)
            runtime.release_unused(set())
    bare, cold, prepared = samples.ms("bare"), samples.ms("cold"), samples.ms("prepared")
    print(f"load average (1 min): {load_before} → {load_average()}", file=sys.stderr)
    for name in samples.values:
        print(f"  {name:45s} {samples.ms(name):6.1f} ms (median)", file=sys.stderr)
    return (
        f"dynos: start to $PORT accepting (median of {rounds}): bare {bare:.0f} ms; "
        f"runc prepared {prepared:.0f} ms, ratio {prepared / bare:.2f}; "
        f"runc cold {cold:.0f} ms, ratio {cold / bare:.2f} (target <= 1.3)"
    )


# -- a real platform (density, and bench/reconcile.py) -----------------------------------------------


def slug_tarball(files: dict[str, str]) -> bytes:
    """Heroku's slug format: a tar.gz with the app under ``./app/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./app/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Platform:
    """A Dockyard started with ``dockyard up`` (runc dynos unless ``runtime`` says otherwise) in a
    scratch directory, with ports, a run directory, a firewall table, an address range and host uids of
    its own; an account and its API key. ``stop`` leaves nothing behind on the host."""

    def __init__(
        self, base: Path, *, runtime: str = "runc", extra: dict[str, str] | None = None
    ) -> None:
        self.base = base
        home = base / "home"
        home.mkdir()
        tag = f"{os.getpid()}"
        api_port = free_port()
        self.run_dir = Path(f"/run/dockyard-bench-{tag}")
        self.table = f"dybench{tag}"
        self.env = {
            **os.environ,
            "HOME": str(home),
            "DOCKYARD_CONFIG": os.devnull,
            "DOCKYARD_DATA_DIR": str(base / "data"),
            "DOCKYARD_API_PORT": str(api_port),
            "DOCKYARD_ROUTER_PORT": str(free_port()),
            "DOCKYARD_API_URL": f"http://localhost:{api_port}",
            "DOCKYARD_GIT_SSH_PORT": str(free_port()),
            "DOCKYARD_RENDEZVOUS_PORT": str(free_port()),
            "DOCKYARD_AGENT_RUNTIME": runtime,
            "DOCKYARD_AGENT_STOP_TIMEOUT": "5",
            "DOCKYARD_BUILD_SANDBOX": "uid",  # nothing is built: slugs are uploaded
            "DOCKYARD_RUNTIME_STACKS_DIR": str(stacks_dir()),
            "DOCKYARD_RUNTIME_RUN_DIR": str(self.run_dir),
            "DOCKYARD_RUNTIME_UID_BASE": str((2000 + os.getpid() % 1000) << 16),
            "DOCKYARD_RUNTIME_UID_SLOTS": "512",
            "DOCKYARD_NETWORK_TABLE": self.table,
            "DOCKYARD_NETWORK_PRIVATE_RANGE": f"10.{97 + os.getpid() % 3}.0.0/16",
            **(extra or {}),
        }
        self.api_url = f"http://localhost:{api_port}"
        self.log_path = base / "platform.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.key = ""
        self.forward = Path("/proc/sys/net/ipv4/ip_forward").read_text(encoding="ascii")

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "dockyard"), "up"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Dockyard did not start:\n{self.log_tail()}")
            time.sleep(0.2)
        created = subprocess.run(
            [str(VENV_BIN / "dockyard"), "admin:create-user", "bench@example.com"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        match = re.search(r"API key \(shown once\): (\S+)", created)
        if match is None:
            raise RuntimeError(created)
        self.key = match.group(1)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Stop the platform (its supervisor stops every dyno), then remove what is left on the host."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        proc.run(["nft", "delete", "table", "inet", self.table], check=False)
        for point in sorted(mount_points(), key=lambda p: len(p.parts), reverse=True):
            if self.run_dir in point.parents or self.base in point.parents:
                proc.run(["umount", "-l", point], check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        Path("/proc/sys/net/ipv4/ip_forward").write_text(self.forward, encoding="ascii")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Accept": "application/vnd.heroku+json; version=3",
            **kwargs.pop("headers", {}),
        }
        response = httpx.request(method, self.api_url + path, headers=headers, timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def create_app(self, name: str, files: dict[str, str], process_types: dict[str, str]) -> None:
        """An app released from an uploaded slug (no build); its formation as the release sets it."""
        self.api("POST", "/apps", json={"name": name})
        slug = self.api("POST", f"/apps/{name}/slugs", json={"process_types": process_types}).json()
        blob = self.api(
            "PUT", slug["blob"]["url"].removeprefix(self.api_url), content=slug_tarball(files)
        )
        self.api("POST", f"/apps/{name}/releases", json={"slug": blob.json()["id"]})

    def dynos(self, app: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api(
            "GET", f"/apps/{app}/dynos", headers={"Range": "id ..; max=1000"}
        ).json()
        return found

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout:g} s\n{self.log_tail()}")
            time.sleep(0.5)

    def roles(self) -> dict[str, int]:
        """The platform's processes by role (``agent``, ``api``, ...), children of ``dockyard up``."""
        found = {}
        for pid in descendants(self.process.pid if self.process else 0):
            argv = cmdline(pid)
            if len(argv) >= 3 and argv[1:3] == ["-m", "dockyard.serve"] and len(argv) > 3:
                found[argv[3]] = pid
        return found


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def descendants(root: int) -> set[int]:
    """Every process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(parent_of(int(entry.name)), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


# -- density ------------------------------------------------------------------------------------------

KIB = 1024
MIB = 1 << 20
KERNEL_FIELDS = ("Slab", "KernelStack", "PageTables", "Percpu")
"""Kernel memory in ``/proc/meminfo`` (tmpfs pages, ``Shmem``, are the run directory's, counted apart)."""
THREAD_STACK = 16 * KIB
"""A kernel stack per thread (x86-64)."""


def meminfo() -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * KIB
    return values


def pss(pid: int) -> int:
    """Proportional set size of a process: its private pages plus its share of pages it shares."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * KIB if match else 0


def status_field(pid: int, name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    match = re.search(rf"^{name}:\s+(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def tmpfs_bytes(root: Path) -> int:
    """Bytes of the files under ``root`` on its own file system (tmpfs pages), not below mounts."""
    result = proc.run(["du", "-sxB1", root], check=False)
    return int(result.text.split()[0]) if result.returncode == 0 and result.text else 0


@dataclass
class Sample:
    """What the platform and its dynos hold at one moment."""

    dynos: int
    agent: int
    others: dict[str, int]
    launchers: list[int]
    apps: list[int]
    app_kernel: int
    """Page tables and kernel stacks of the app's own processes."""
    run_dir: int
    kernel: dict[str, int]
    used: int
    """All memory in use on the host (``MemTotal - MemAvailable``), apps included."""
    platform_processes: int
    """Processes below ``dockyard up`` (dynos are not: a per-dyno helper would show here)."""
    orphaned_inits: int
    """Dyno init processes whose parent is the host's init (no supervisor above them)."""


def dyno_processes(platform: Platform) -> dict[str, list[int]]:
    """The processes of each of the platform's dynos, its init (the launcher) first: runc's state names
    the init, the dyno's cgroup the rest."""
    found: dict[str, list[int]] = {}
    runc_root = platform.run_dir / "runc"
    for entry in runc_root.iterdir() if runc_root.is_dir() else []:
        tasks = Path(f"/sys/fs/cgroup/pids/dockyard/{entry.name}/cgroup.procs")
        with contextlib.suppress(OSError, ValueError, KeyError):
            init = int(json.loads((entry / "state.json").read_text())["init_process_pid"])
            others = {int(p) for p in tasks.read_text(encoding="ascii").split()} - {init}
            found[entry.name] = [init, *sorted(others)]
    return found


def sample(platform: Platform) -> Sample:
    roles = platform.roles()
    agent = roles.pop("agent")
    dynos = dyno_processes(platform)
    launchers, apps, app_kernel, orphaned = [], [], 0, 0
    for pids in dynos.values():
        init = pids[0]
        orphaned += parent_of(init) == 1
        launchers.append(pss(init))
        for pid in pids[1:]:
            apps.append(pss(pid))
            app_kernel += status_field(pid, "VmPTE") * KIB + THREAD_STACK * status_field(
                pid, "Threads"
            )
    info = meminfo()
    return Sample(
        dynos=len(dynos),
        agent=pss(agent),
        others={role: pss(pid) for role, pid in roles.items()},
        launchers=launchers,
        apps=apps,
        app_kernel=app_kernel,
        run_dir=tmpfs_bytes(platform.run_dir),
        kernel={name: info.get(name, 0) for name in KERNEL_FIELDS},
        used=info["MemTotal"] - info["MemAvailable"],
        platform_processes=len(descendants(platform.process.pid if platform.process else 0)),
        orphaned_inits=orphaned,
    )


def settled_sample(platform: Platform, settle: float) -> Sample:
    """A sample after ``settle`` seconds (the agent's memory check runs every 10 s)."""
    time.sleep(settle)
    return sample(platform)


def bench_density(count: int, keep: bool) -> str:
    """``count`` web dynos of the hello-world app: an app may have at most ``MAX_DYNOS_PER_APP`` (100)
    dynos of a type, so the same app is deployed as several apps of up to 100 web dynos."""
    apps = [f"hello-{n + 1}" for n in range(-(-count // MAX_DYNOS_PER_APP))]
    quantities = {
        app: min(MAX_DYNOS_PER_APP, count - n * MAX_DYNOS_PER_APP) for n, app in enumerate(apps)
    }
    with scratch_dir() as base:
        platform = Platform(base)
        try:
            platform.start()
            for app in apps:
                platform.create_app(app, {"server.py": SERVER}, {"web": "python3 server.py"})

            def up(wanted: dict[str, int]) -> Callable[[], bool]:
                def check() -> bool:
                    for app in apps:
                        dynos = platform.dynos(app)
                        if len(dynos) != wanted.get(app, 0) or any(
                            d["state"] != "up" for d in dynos
                        ):
                            return False
                    return True

                return check

            for app in apps:
                platform.api("PATCH", f"/apps/{app}/formation/web", json={"quantity": 1})
            platform.wait_until("1 dyno per app up", up(dict.fromkeys(apps, 1)))
            load_before = load_average()
            one = settled_sample(platform, 15)
            began = time.monotonic()
            for app in apps:
                platform.api(
                    "PATCH", f"/apps/{app}/formation/web", json={"quantity": quantities[app]}
                )
            platform.wait_until(f"{count} dynos up", up(quantities))
            scaled = time.monotonic() - began
            many = settled_sample(platform, 15)
            load_after = load_average()
            report = density_report(one, many, scaled, load_before, load_after)
            if keep:
                print(f"kept: {base} (press Ctrl-C to stop)", file=sys.stderr)
                with contextlib.suppress(KeyboardInterrupt):
                    time.sleep(86400)
            for app in apps:
                platform.api("PATCH", f"/apps/{app}/formation/web", json={"quantity": 0})
            platform.wait_until("every dyno stopped", up({}))
        finally:
            platform.stop()
    return report


def density_report(
    one: Sample, many: Sample, scaled: float, load_before: str, load_after: str
) -> str:
    added = many.dynos - one.dynos
    if added <= 0:
        raise RuntimeError(f"no dynos were added ({one.dynos} → {many.dynos})")

    def per(before: int, after: int) -> float:
        return (after - before) / added / MIB

    agent = per(one.agent, many.agent)
    launcher = statistics.mean(many.launchers) / MIB
    run_dir = per(one.run_dir, many.run_dir)
    others = {r: per(one.others.get(r, 0), v) for r, v in many.others.items()}
    kernel_total = sum(many.kernel.values()) - sum(one.kernel.values())
    kernel = (kernel_total - (many.app_kernel - one.app_kernel)) / added / MIB
    total = agent + launcher + run_dir + max(kernel, 0.0)
    out = sys.stderr
    print(f"load average (1 min): {load_before} → {load_after}", file=out)
    print(f"scaled from {one.dynos} to {many.dynos} web dynos in {scaled:.0f} s", file=out)
    print(f"per added dyno (MiB): agent PSS {agent:+.3f}", file=out)
    print(f"  launcher (bash, PID 1 of each dyno) PSS {launcher:.3f}", file=out)
    print(f"  run directory files (runc state, hosts) {run_dir:+.3f}", file=out)
    for name in KERNEL_FIELDS:
        print(f"  kernel {name} {per(one.kernel[name], many.kernel[name]):+.3f}", file=out)
    app_kernel = (many.app_kernel - one.app_kernel) / added / MIB
    print(f"  less the app's own page tables and kernel stacks {app_kernel:.3f}", file=out)
    print(f"  kernel, the platform's {kernel:+.3f}", file=out)
    for role, value in sorted(others.items()):
        print(f"  (other platform process: {role} PSS {value:+.3f}; not per-dyno state)", file=out)
    print(
        f"the app itself (python PSS) {statistics.mean(many.apps) / MIB:.2f} MiB per dyno", file=out
    )
    more = many.platform_processes - one.platform_processes
    helpers = "none" if more <= 0 else f"{more} more platform processes"
    print(f"platform processes: {one.platform_processes} → {many.platform_processes}", file=out)
    print(
        f"all memory in use on the host grew by {per(one.used, many.used):.2f} MiB per dyno (the app "
        "included, and whatever else the machine did meanwhile)",
        file=out,
    )
    inits = f"{many.orphaned_inits} of {many.dynos} dyno inits are children of the host's init"
    print(inits, file=out)
    return (
        f"dynos: density, {many.dynos} idle web dynos: platform {total:.2f} MiB per dyno "
        f"(agent {agent:.2f}, launcher {launcher:.2f}, run directory {run_dir:.2f}, kernel "
        f"{kernel:.2f}) (target <= 2 MiB); per-dyno platform processes: {helpers}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="start", choices=["start", "density"])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--dynos", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="density: keep the dynos until Ctrl-C")
    args = parser.parse_args()
    # one result line, not the runtime's notices
    logging.getLogger("dockyard").setLevel(logging.ERROR)
    if os.geteuid() != 0 or shutil.which("runc") is None:
        print("dynos: skipped (needs root and runc)")
        return 0
    if args.what == "density":
        print(bench_density(args.dynos, args.keep))
    else:
        print(bench_start(args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
