"""The runc build sandbox on the real kernel: one-shot containers on the build stack image, the build's
directories at their own paths, the build's cgroup limits, nothing left behind — by a command, by a build
that is closed, or by a build whose process died."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.errors import CommandError, DynoError
from dockyard.runtime.sandbox import (
    FALLBACK_NAMESERVERS,
    RuncBuildContainer,
    RuncBuildContainers,
    is_build_lease,
    lease_id,
    reachable_nameservers,
)
from dockyard.slug.mount import mount_points
from tests.runtime.runc_support import reachable_dir
from tests.runtime.sandbox_support import requires_build_sandbox, sandbox_settings

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
MEMORY = 128 << 20
PROCESSES = 64
FILE_BYTES = 8 << 20
NAMESERVER = "198.51.100.53"


# -- pure rules ----------------------------------------------------------------------------------------


def test_nameservers_from_the_setting_are_used_as_given(tmp_path: Path) -> None:
    assert reachable_nameservers("9.9.9.9, 149.112.112.112", tmp_path / "none") == [
        "9.9.9.9",
        "149.112.112.112",
    ]


def test_only_host_nameservers_a_build_may_reach_are_taken(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver 9.9.9.9\n")
    assert reachable_nameservers("", resolv) == ["9.9.9.9"]
    resolv.write_text("nameserver 10.255.255.53\noptions edns0\n")
    assert reachable_nameservers("", resolv) == list(FALLBACK_NAMESERVERS)


def test_a_nameserver_that_is_no_address_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DynoError, match=r"setting build.nameservers: 'dns.example' is not an IP"):
        reachable_nameservers("dns.example", tmp_path / "none")


def test_build_leases_are_told_apart_from_dyno_leases() -> None:
    assert is_build_lease(lease_id("0f1e2d3c4b5a69788796a5b4c3d2e1f0"))
    assert not is_build_lease(str(uuid.uuid4()))


# -- containers ----------------------------------------------------------------------------------------


@dataclass
class Build:
    container: RuncBuildContainer
    scratch: Path

    @property
    def app(self) -> Path:
        return self.scratch / "app"

    def run(self, script: str, timeout: float = 30) -> proc.Completed:
        return self.container.run(["sh", "-c", script], cwd=self.app, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuncBuildContainers]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with reachable_dir() as base:
        settings = sandbox_settings(
            tmp_path_factory.mktemp("sandbox") / "data",
            base / "run",
            __name__,
            DOCKYARD_BUILD_NAMESERVERS=NAMESERVER,
        )
        yield RuncBuildContainers(settings, network="none")


def open_build(containers: RuncBuildContainers, where: Path) -> Build:
    """A build's scratch directory as the pipeline makes it (pytest's own temporary directories are
    closed to other users: runc's init reaches it through the build's bind mount) and its containers."""
    scratch = where / "build-x"
    scratch.mkdir(mode=0o711)
    for name in ("app", "env"):
        (scratch / name).mkdir(mode=0o700)
    (scratch / "env" / "FOO").write_text("bar")
    container = containers.open(
        uuid.uuid4().hex,
        "app-1",
        scratch,
        readonly=[scratch / "env"],
        memory_bytes=MEMORY,
        max_processes=PROCESSES,
        file_bytes=FILE_BYTES,
    )
    for path in (scratch / "app", scratch / "env", scratch / "env" / "FOO"):
        os.chown(path, container.uid, container.uid)
    return Build(container, scratch)


@pytest.fixture
def build(containers: RuncBuildContainers, tmp_path: Path) -> Iterator[Build]:
    made = open_build(containers, tmp_path)
    yield made
    made.container.close()


def processes_of(uid: int) -> list[str]:
    """Live processes of host user ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(f"{entry.name} {fields['Name'].strip()}")
    return found


@requires_build_sandbox
def test_a_command_runs_on_the_build_stack_as_the_apps_build_user(
    containers: RuncBuildContainers, build: Build
) -> None:
    done = build.run(
        'id -u; . /etc/dockyard-stack; echo "$NAME"; pwd; cat ../env/FOO; echo; touch made\n'
        "(echo changed > ../env/FOO) 2>/dev/null || echo env read-only\n"
        "(touch /usr/made) 2>/dev/null || echo root read-only\n"
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status\n"
        "for tool in gcc pip3 npm; do command -v $tool; done\n"
    )

    assert done.returncode == 0, done.stderr
    assert done.text.splitlines() == [
        "1000",
        "dockyard-12-build",
        str(build.app),
        "bar",
        "env read-only",
        "root read-only",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "/usr/bin/gcc",
        "/usr/bin/pip3",
        "/usr/bin/npm",
    ]
    # The app's own unprivileged range, as for its dynos.
    assert build.container.uid == containers.uids.host_base("app-1") + 1000
    assert (build.app / "made").stat().st_uid == build.container.uid


@requires_build_sandbox
def test_builds_trust_the_hosts_certificates_and_use_the_configured_nameservers(
    build: Build,
) -> None:
    done = build.run('sha256sum < "$SSL_CERT_FILE"; cat /etc/resolv.conf; echo "$SSL_CERT_FILE"')

    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert done.text.splitlines() == [
        f"{hashlib.sha256(host_bundle).hexdigest()}  -",
        f"nameserver {NAMESERVER}",
        "/etc/ssl/certs/ca-certificates.crt",
    ]


@requires_build_sandbox
def test_output_and_exit_status_pass_through(build: Build) -> None:
    lines: list[bytes] = []
    code = build.container.stream(
        ["sh", "-c", "echo one; echo two >&2; exit 7"], on_line=lines.append, cwd=build.app, env=ENV
    )
    assert (code, lines) == (7, [b"one", b"two"])
    with pytest.raises(CommandError, match=r"^cannot run /nonexistent: .*no such file"):
        build.container.run(["/nonexistent"], cwd=build.app, env=ENV, timeout=30)


@requires_build_sandbox
def test_a_short_command_that_runs_out_of_time_is_killed_with_its_container(build: Build) -> None:
    with pytest.raises(CommandError, match=r"did not finish within 0.5 s"):
        build.run("sleep 30 & sleep 30", timeout=0.5)
    assert processes_of(build.container.uid) == []


@requires_build_sandbox
def test_a_command_that_exhausts_the_builds_memory_is_told_apart(build: Build) -> None:
    hog = build.run('python3 -c "x = bytearray(400 * 1024 * 1024)"')
    assert (hog.returncode, build.container.out_of_memory()) == (137, True)
    failing = build.run("exit 1")
    assert (failing.returncode, build.container.out_of_memory()) == (1, False)


@requires_build_sandbox
def test_a_file_may_not_grow_past_the_file_size_limit(build: Build) -> None:
    done = build.run('head -c 20000000 /dev/zero > big; echo "$?"; ulimit -f')
    assert done.text.split() == ["153", str(FILE_BYTES // 512)]
    assert (build.app / "big").stat().st_size == FILE_BYTES


@requires_build_sandbox
def test_nothing_a_command_starts_outlives_it(build: Build) -> None:
    done = build.run("setsid sleep 300 < /dev/null > /dev/null 2>&1 & echo started")
    assert done.text == "started\n"
    assert processes_of(build.container.uid) == []


@requires_build_sandbox
def test_the_processes_of_a_build_are_capped_and_counted(build: Build) -> None:
    seen: list[int] = []

    def watch() -> None:
        seen.append(build.container.tasks() or 0)
        if max(seen) >= PROCESSES or len(seen) > 40:
            raise TimeoutError("enough")

    bomb = "import os\nwhile True:\n  try: os.fork()\n  except OSError: pass"
    with pytest.raises(TimeoutError):
        build.container.stream(
            ["python3", "-c", bomb], on_line=lambda _l: None, cwd=build.app, env=ENV, watch=watch
        )
    assert max(seen) == PROCESSES
    assert processes_of(build.container.uid) == []  # stopped: its container killed


@requires_build_sandbox
def test_closing_a_build_leaves_nothing_behind(
    containers: RuncBuildContainers, tmp_path: Path
) -> None:
    build = open_build(containers, tmp_path)
    assert build.run("true").returncode == 0

    build.container.close()

    directory = containers.run_root / build.container.id
    assert not directory.exists()
    assert not [p for p in mount_points() if directory in p.parents]
    assert not (Path("/sys/fs/cgroup/memory/dockyard-build") / build.container.id).exists()
    assert not [s for s in containers.runc_root.iterdir() if s.name.startswith(build.container.id)]
    assert (build.scratch / "app").is_dir()  # the build's own files are the pipeline's to remove


OPEN_AND_WAIT = textwrap.dedent(
    """
    import os, sys, time, uuid
    from pathlib import Path
    from dockyard.runtime.sandbox import RuncBuildContainers
    from dockyard.settings import load_settings
    containers = RuncBuildContainers(load_settings(os.environ), network="none")
    scratch = Path(sys.argv[1])
    build = containers.open(uuid.uuid4().hex, "app-1", scratch, memory_bytes=1 << 26,
                            max_processes=16, file_bytes=1 << 20)
    print(build.id, flush=True)
    time.sleep(300)
    """
)


@requires_build_sandbox
def test_the_leftovers_of_a_build_whose_process_died_are_swept(
    containers: RuncBuildContainers, tmp_path: Path
) -> None:
    scratch = tmp_path / "build-dead"
    scratch.mkdir(mode=0o711)
    child = subprocess.Popen(
        [sys.executable, "-c", OPEN_AND_WAIT, str(scratch)],
        env={**os.environ, **containers.settings.to_env()},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    build_id = child.stdout.readline().strip()
    directory = containers.run_root / build_id
    assert [p for p in mount_points() if directory in p.parents]
    assert containers.sweep() == []  # alive: left alone
    child.kill()
    child.wait()
    child.stdout.close()

    assert containers.sweep() == [build_id]

    assert not directory.exists()
    assert not [p for p in mount_points() if directory in p.parents]
    assert not (Path("/sys/fs/cgroup/memory/dockyard-build") / build_id).exists()


@requires_build_sandbox
def test_a_probe_runs_once_in_the_build_stack_image(containers: RuncBuildContainers) -> None:
    done = containers.probe(
        ["/usr/bin/python3", "-c", "import sys; print(sys.executable, sys.version_info[:2])"],
        timeout=30,
    )
    assert done.text == "/usr/bin/python3 (3, 11)\n"
    assert containers.label.startswith("dockyard-12-build-")
