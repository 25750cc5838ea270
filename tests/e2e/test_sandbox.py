"""The dyno sandbox, checked from inside real runc dynos (root, the real stack image; security requirements
24 and 25).

Most dynos here have loopback-only network namespaces, so a neighbour's HTTP server is asked from inside its
own network namespace (``nsenter --net``). The last tests attach dynos to a real ``DynoNetwork`` (a table and
an address range of their own) and talk HTTP to them from the host, as the router does; the firewall rules
themselves are tested in ``test_network_isolation.py``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.runtime.base import RunningDyno
from dockyard.runtime.network import DynoNetwork
from dockyard.runtime.runc import RuncRuntime
from dockyard.slug.store import SlugStore
from tests.e2e.conftest import Dockyard
from tests.runtime.runc_support import (
    current,
    output_of,
    pids_of,
    reachable_dir,
    requires_runc,
    run_to_end,
    runc_runtime,
    runc_settings,
    spec,
    stop_all,
    wait_for,
)
from tests.runtime.slugs import build_slug

pytestmark = [pytest.mark.e2e, pytest.mark.root, requires_runc, pytest.mark.timeout(600)]

KEYCTL = {"x86_64": 250, "aarch64": 219}[platform.machine()]
IO_URING_SETUP = 425
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000

PROBE = textwrap.dedent(
    f"""
    import ctypes, errno, json, os, socket
    libc = ctypes.CDLL(None, use_errno=True)

    def outcome(result):
        return "ok" if result == 0 else errno.errorcode.get(ctypes.get_errno(), "?")

    def attempt(action):
        try:
            action()
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc.errno))
        return "ok"

    def write(path):
        with open(path, "w") as handle:
            handle.write("x")

    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    found = {{name: status[name].strip() for name in ("CapEff", "CapPrm", "NoNewPrivs", "Seccomp")}}
    found["mount"] = outcome(libc.mount(b"tmpfs", b"/mnt", b"tmpfs", 0, None))
    found["unshare_user"] = outcome(libc.unshare({CLONE_NEWUSER}))
    found["unshare_mount"] = outcome(libc.unshare({CLONE_NEWNS}))
    found["keyctl"] = outcome(libc.syscall({KEYCTL}, 0, 0, 0, 0, 0))
    found["io_uring"] = outcome(libc.syscall({IO_URING_SETUP}, 1, None))
    found["ptrace"] = outcome(libc.ptrace(0, 0, None, None))
    found["raw_socket"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))
    found["packet_socket"] = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    found["write_root"] = attempt(lambda: write("/evil"))
    found["write_etc"] = attempt(lambda: write("/etc/passwd"))
    found["write_proc_sys"] = attempt(lambda: write("/proc/sys/kernel/hostname"))
    found["sysrq"] = attempt(lambda: write("/proc/sysrq-trigger"))
    found["setuid_root"] = attempt(lambda: os.setuid(0))
    found["mknod"] = attempt(lambda: os.mknod("/tmp/sda", 0o600 | 0o060000, os.makedev(8, 0)))
    found["masked"] = {{
        path: open(path, "rb").read(64).decode("ascii", "replace")
        for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
        if os.path.exists(path)
    }}
    found["unshare_command"] = os.system("unshare --user true 2>/dev/null") != 0
    print(json.dumps(found), flush=True)
    """
)

SEES = textwrap.dedent(
    """
    import json, os
    mine = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                mine.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode())
            except OSError:
                pass
    paths = os.environ["HOST_PATHS"].split(":")
    print(json.dumps({
        "processes": mine,
        "host_paths": [p for p in paths if os.path.exists(p)],
        "hostname": open("/etc/hostname").read().strip(),
        "root_home": sorted(os.listdir("/root")) if os.access("/root", os.R_OK) else "unreadable",
    }), flush=True)
    """
)

FORK_BOMB = (
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
)
MEMORY_HOG = "hog = []\nwhile True:\n    hog.append(b'\\x01' * (32 << 20))\n"


@pytest.fixture
def env() -> Iterator[tuple[RuncRuntime, str]]:
    with runc_runtime() as pair:
        yield pair


def last_json(text: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(text.strip().splitlines()[-1])
    return result


def init_pid(runtime: RuncRuntime, dyno: RunningDyno) -> int:
    return int((runtime.root / dyno.spec.id / "pid").read_text())


def host_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def ask(pid: int, port: int) -> float:
    """Seconds an HTTP GET to the dyno's $PORT takes, asked from inside the dyno's network namespace."""
    started = time.monotonic()
    code = (
        "import http.client, sys; c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), "
        "timeout=5); c.request('GET', '/'); assert c.getresponse().status == 200"
    )
    proc.run(["nsenter", f"--net=/proc/{pid}/ns/net", "python3", "-c", code, str(port)], timeout=10)
    return time.monotonic() - started


def neighbour(runtime: RuncRuntime, slug: str) -> tuple[RunningDyno, int]:
    """A web dyno of another app, answering HTTP on its $PORT; with its init pid."""
    dyno = runtime.start(spec(slug, "python3 app.py", app="app-neighbour"))
    wait_for(lambda: runtime.listening(dyno.spec.id), what="the neighbour's $PORT")
    pid = init_pid(runtime, dyno)
    ask(pid, dyno.port)
    return dyno, pid


def test_no_capabilities_no_new_privileges_seccomp_and_refused_operations(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    code, output = run_to_end(runtime, spec(slug, 'python3 -c "$PROBE"', env={"PROBE": PROBE}))
    assert code == 0, output
    found = last_json(output)
    assert found["CapEff"] == found["CapPrm"] == "0000000000000000"
    assert (found["NoNewPrivs"], found["Seccomp"]) == ("1", "2")
    for operation in (
        "mount",
        "unshare_user",
        "unshare_mount",
        "keyctl",
        "io_uring",
        "ptrace",
        "raw_socket",
        "packet_socket",
        "setuid_root",
        "mknod",
    ):
        assert found[operation] == "EPERM", (operation, found[operation])
    for path in ("write_root", "write_etc", "write_proc_sys"):
        assert found[path] in ("EROFS", "EACCES"), (path, found[path])
    assert found["sysrq"] in ("EROFS", "EACCES", "ENOENT")  # some kernels have no sysrq at all
    assert found["write_root"] == "EROFS"
    masked = found["masked"]
    assert isinstance(masked, dict) and masked  # at least one of them exists on any kernel
    assert set(masked.values()) == {""}, masked  # masked with /dev/null
    assert found["unshare_command"] is True


def test_dyno_processes_are_unprivileged_host_uids_of_their_own_app(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    first = runtime.start(spec(slug, "exec sleep 600", app="app-a"))
    second = runtime.start(spec(slug, "exec sleep 600", app="app-a", name="web.2"))
    other = runtime.start(spec(slug, "exec sleep 600", app="app-b"))
    uids = [host_uid(init_pid(runtime, d)) for d in (first, second, other)]
    assert all(uid >= 65536 for uid in uids)
    assert uids[0] == uids[1] != uids[2]
    assert abs(uids[0] - uids[2]) >= 65536  # separate ranges


def test_another_app_s_processes_files_and_the_host_are_invisible(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    other = runtime.start(
        spec(slug, "echo secret > /app/secret-of-b; exec sleep 4242", app="app-b")
    )
    wait_for(lambda: pids_of(runtime, other.spec.id) >= 1, what="the other app's dyno")
    host_paths = [
        str(runtime.settings.data_dir.parent),
        str(runtime.root / other.spec.id),
        str(runtime.settings.stacks_dir),
    ]
    code, output = run_to_end(
        runtime,
        spec(slug, 'python3 -c "$SEES"', env={"SEES": SEES, "HOST_PATHS": ":".join(host_paths)}),
    )
    assert code == 0, output
    seen = last_json(output)
    processes = seen["processes"]
    assert isinstance(processes, list)
    assert not any("4242" in line for line in processes)
    assert len(processes) <= 4  # the launcher, the subshell and python: its own processes only
    assert seen["host_paths"] == []
    assert seen["hostname"] == "dyno"  # the stack's /etc/hostname, not the host's
    assert seen["root_home"] in ([], "unreadable")


def test_a_fork_bomb_is_stopped_by_pids_max_while_a_neighbour_keeps_answering(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    web, web_pid = neighbour(runtime, slug)
    bomb = runtime.start(spec(slug, 'python3 -c "$BOMB"', env={"BOMB": FORK_BOMB}))
    wait_for(lambda: pids_of(runtime, bomb.spec.id) >= 256, what="the bomb reaching pids.max")
    usage = runtime.usage(bomb.spec.id)
    assert usage is not None and usage.pids == usage.pids_limit == 256
    latencies = [ask(web_pid, web.port) for _ in range(5)]
    assert max(latencies) < 3.0, latencies
    assert current(runtime, web.spec.id).state == "running"
    started = time.monotonic()
    runtime.stop(bomb.spec.id, timeout=1)
    assert time.monotonic() - started < 15
    assert runtime.usage(bomb.spec.id) is None
    ask(web_pid, web.port)


def test_a_memory_hog_is_killed_at_its_limit_while_a_neighbour_keeps_answering(
    env: tuple[RuncRuntime, str],
) -> None:
    runtime, slug = env
    web, web_pid = neighbour(runtime, slug)
    hog = runtime.start(spec(slug, 'python3 -c "$HOG"', env={"HOG": MEMORY_HOG}))
    wait_for(lambda: current(runtime, hog.spec.id).state == "exited", 60, "the hog's end")
    assert current(runtime, hog.spec.id).exit_code == 137  # SIGKILL from the kernel's OOM killer
    usage = runtime.usage(hog.spec.id)
    assert usage is not None and usage.oom_kills >= 1
    assert usage.memory_bytes >= 0.9 * usage.memory_limit_bytes  # what it held when it was killed
    assert "MemoryError" not in output_of(runtime, hog.spec.id)
    assert ask(web_pid, web.port) < 3.0
    assert current(runtime, web.spec.id).state == "running"


PUBLIC_SERVER = textwrap.dedent(
    """
    import json, os
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"dyno": os.environ["DYNO"], "peer": self.client_address[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
    """
)
CONNECT = textwrap.dedent(
    """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
        print("connected")
    except OSError as exc:
        print(f"refused {exc}")
    """
)


@contextlib.contextmanager
def networked_runtime() -> Iterator[tuple[RuncRuntime, str]]:
    """A RuncRuntime whose dynos are attached to a DynoNetwork with its own nftables table and range."""
    if shutil.which("nft") is None or shutil.which("ip") is None:
        pytest.skip("needs nftables and iproute2 (scripts/bootstrap installs them)")
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    with reachable_dir() as base:
        settings = runc_settings(
            base,
            DOCKYARD_NETWORK_TABLE=f"dysandbox{os.getpid()}",
            DOCKYARD_NETWORK_PRIVATE_RANGE=f"10.91.{os.getpid() % 200 + 20}.0/24",
        )
        network = DynoNetwork(settings)
        try:
            runtime = RuncRuntime(settings)  # "host": sets the network up
            slug = build_slug(base, SlugStore(settings.slugs_dir))
            try:
                yield runtime, slug
            finally:
                stop_all(runtime)
        finally:
            for dyno_id in network.attachments():
                network.detach(dyno_id)
            network.teardown_host()
            Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)


def network_gateway(runtime: RuncRuntime) -> str:
    network = runtime.network
    assert isinstance(network, DynoNetwork)
    return network.router_source()


def get(address: str) -> dict[str, object]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        result: dict[str, object] = json.loads(response.read())
        return result
    finally:
        conn.close()


def answers(address: str) -> bool:
    try:
        get(address)
    except OSError:
        return False
    return True


def test_a_web_dyno_on_the_dyno_network_answers_the_host_and_not_another_dyno() -> None:
    with networked_runtime() as (runtime, slug):
        server = {"SERVER": PUBLIC_SERVER}
        web = runtime.start(spec(slug, 'python3 -c "$SERVER"', env=server))
        assert web.address.startswith("10.91.") and web.address.endswith(f":{web.port}")
        wait_for(lambda: answers(web.address), what="the web dyno answering from the host")
        seen = get(web.address)
        assert seen["dyno"] == "web.1"
        assert seen["peer"] == network_gateway(runtime)  # the host's end of the dyno link
        other = runtime.start(
            spec(
                slug,
                'cat /sys/fs/cgroup/pids/pids.max; python3 -c "$CONNECT" "$TARGET" "$TARGET_PORT"',
                app="app-b",
                env={
                    "CONNECT": CONNECT,
                    "TARGET": web.address.rpartition(":")[0],
                    "TARGET_PORT": str(web.port),
                },
            )
        )
        wait_for(lambda: current(runtime, other.spec.id).state == "exited", what="the probe's end")
        limit, outcome = output_of(runtime, other.spec.id).splitlines()
        assert (
            limit == "256"
        )  # cgroup files are there in a networked dyno too (its /sys is a tmpfs)
        assert outcome.startswith("refused")
        runtime.stop(web.spec.id, timeout=5)
        assert not answers(web.address)


PUSHED_SERVER = """\
import http.server, os, socket

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"uid={os.getuid()} host={socket.gethostname()} dyno={os.environ['DYNO']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
"""


def test_a_pushed_app_runs_in_a_runc_dyno_and_serves_through_the_router(
    dockyard: Dockyard, tmp_path: Path
) -> None:
    """``make up`` as root runs dynos with runc, its default there."""
    platform, run_dir = dockyard, dockyard.run_dir
    assert run_dir is not None
    assert "runtime        : runc (sandboxed" in platform.platform_log(whole=True)
    created = platform.cli("admin:create-user", "runc@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    response = platform.api("POST", "/apps", key.group(1), json={"name": "in-runc"})
    assert response.status_code == 201, response.text
    repo = tmp_path / "in-runc"
    repo.mkdir()
    platform.git("init", "-q", "-b", "main", cwd=repo)
    (repo / "server.py").write_text(PUSHED_SERVER)
    (repo / "Procfile").write_text("web: python3 server.py\n")
    platform.git("add", "-A", cwd=repo)
    platform.git("commit", "-q", "-m", "first", cwd=repo)
    platform.cli("login", "--email", "runc@example.com", "--api-key", key.group(1))
    platform.cli("git:remote", "-a", "in-runc", cwd=repo)
    push = platform.git("push", "dockyard", "main", cwd=repo)
    assert "Released v2" in push.stdout + push.stderr
    served = platform.wait_for("in-runc", "dyno=web.1")
    assert (
        served.text.strip() == "uid=1000 host=web.1 dyno=web.1"
    )  # the dyno user, in its own uts ns
    listed = proc.run(["runc", "--root", run_dir / "runc", "list", "--format", "json"]).text
    assert [c["status"] for c in json.loads(listed)] == ["running"]
