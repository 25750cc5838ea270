"""Builds in the runc sandbox, through the pipeline: every buildpack script runs in a one-shot container on
the build stack image as the app's unprivileged user; a fork bomb, a disk filler, a huge file, a memory hog,
a slow build and a left-behind daemon are each stopped with a message naming the limit and its setting,
leaving nothing running; a build reaches the outside but neither the host's ports nor another dyno; the
stack's own Python and Node.js versions are the ones checked; without the build stack image the build runs
in the uid sandbox and says so."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.buildpacks import ClassicBuildpack, NodejsBuildpack, PythonBuildpack
from dockyard.build.isolation import UID_BASE, UID_SLOTS
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline, BuildResult
from dockyard.build.stack import HostStack, ImageStack
from dockyard.control.deploys import build_sandbox
from dockyard.errors import CompileError
from dockyard.runtime.network import DynoNetwork
from dockyard.runtime.sandbox import RuncBuildContainers, lease_id
from dockyard.settings import Settings
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore
from tests.build.conftest import write_buildpack, write_tree
from tests.runtime.runc_support import reachable_dir
from tests.runtime.sandbox_support import (
    CLIENT,
    Outside,
    free_port,
    module_network,
    outside_world,
    requires_build_sandbox,
    sandbox_settings,
    serve,
    stop,
)
from tests.runtime.test_sandbox import processes_of

pytestmark = [requires_build_sandbox, pytest.mark.root]

LIMITS = {
    "DOCKYARD_BUILD_MAX_PROCESSES": "32",
    "DOCKYARD_BUILD_DISK_BYTES": str(2 << 20),
    "DOCKYARD_BUILD_MEMORY_BYTES": str(64 << 20),
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with reachable_dir() as base:
        made = sandbox_settings(
            tmp_path_factory.mktemp("runc-builds") / "data", base / "run", __name__, **LIMITS
        )
        with module_network(made):
            yield made


@pytest.fixture(scope="module")
def containers(settings: Settings) -> RuncBuildContainers:
    return RuncBuildContainers(settings)


class Builder:
    def __init__(
        self, base: Path, settings: Settings, containers: RuncBuildContainers | None, timeout: float
    ) -> None:
        self.base = base
        self.slugs = SlugStore(base / "slugs")
        self.containers = containers
        self.pipeline = BuildPipeline(
            self.slugs,
            base / "work",
            base / "cache",
            timeout,
            settings=settings.build,
            containers=containers,
        )
        self.lines: list[str] = []

    def build(self, compile_body: str, *, app_id: str = "app-1") -> BuildResult:
        source = write_tree(self.base / "src", {"Procfile": "web: ./run\n"})
        buildpack = write_buildpack(
            self.base / "bp",
            {"detect": "echo Shell\n", "compile": 'echo "build user $(id -u)"\n' + compile_body},
        )
        try:
            return self.pipeline.run(
                app_id,
                source,
                {},
                None,
                BuildOutput(self.lines.append),
                [ClassicBuildpack(buildpack)],
            )
        finally:
            shutil.rmtree(self.base / "src")
            shutil.rmtree(self.base / "bp")

    @property
    def host_uid(self) -> int:
        assert self.containers is not None
        return self.containers.host_ids("app-1")[2]

    def fails(self, compile_body: str) -> str:
        with pytest.raises(CompileError) as caught:
            self.build(compile_body)
        assert processes_of(self.host_uid) == []
        assert list((self.base / "work").glob("build-*")) == []
        assert self.slugs.digests() == set()
        assert self.containers is not None
        builds = [d.name for d in self.containers.run_root.iterdir() if d.is_dir()]
        assert builds == ["runc"]  # runc's state only: no build's directory is left
        return caught.value.message


@pytest.fixture
def builder(tmp_path: Path, settings: Settings, containers: RuncBuildContainers) -> Builder:
    return Builder(tmp_path, settings, containers, timeout=30)


def test_buildpacks_run_in_a_container_on_the_build_stack_as_the_apps_user(
    builder: Builder,
) -> None:
    result = builder.build(
        'id -u > "$1/uid"; . /etc/dockyard-stack; echo "$NAME" > "$1/stack"\n'
        'ulimit -f > "$1/fsize"; echo "$TMPDIR" > "$1/tmpdir"; cat /proc/1/comm > "$1/init"\n'
        'cat /etc/shadow > "$1/shadow" 2>/dev/null || echo denied > "$1/shadow"\n'
        "touch /tmp/dockyard-sandbox-test-left-behind\n"
    )

    unpacked = builder.base / "unpacked"
    extract_image(builder.slugs.get(result.digest), unpacked)
    assert (unpacked / "uid").read_text() == "1000\n"
    assert (unpacked / "stack").read_text() == "dockyard-12-build\n"
    assert (unpacked / "fsize").read_text() == f"{2 * 1024 * 2}\n"  # 512-byte blocks
    assert "/work/build-" in (unpacked / "tmpdir").read_text()
    assert (unpacked / "init").read_text() == "compile\n"  # its own process namespace
    assert (unpacked / "shadow").read_text() == "denied\n"
    assert os.stat(unpacked / "uid").st_uid == 0  # the slug is root's
    assert not Path("/tmp/dockyard-sandbox-test-left-behind").exists()
    assert not any(line.startswith(" !") for line in builder.lines)


def test_a_fork_bomb_is_contained_and_stopped(builder: Builder) -> None:
    message = builder.fails(
        "python3 -c 'import os\nwhile True:\n  try: os.fork()\n  except OSError: pass'\n"
    )
    assert message.startswith("Buildpack bp: bin/compile was stopped: it ran 32 processes and ")
    assert "setting build.max_processes, DOCKYARD_BUILD_MAX_PROCESSES" in message


def test_a_disk_filler_is_stopped_at_the_disk_limit(builder: Builder) -> None:
    message = builder.fails(
        'i=0\nwhile :; do head -c 65536 /dev/zero > "$1/f$i"; i=$((i + 1)); done\n'
    )
    assert "was stopped: the build used more than 2.0M of disk space" in message
    assert "setting build.disk_bytes, DOCKYARD_BUILD_DISK_BYTES" in message


def test_a_file_larger_than_the_disk_limit_is_cut_off(builder: Builder) -> None:
    message = builder.fails('head -c 10000000 /dev/zero > "$1/big"\n')
    assert "exited with code 153. A file grew past 2.0M, the disk limit for a build" in message


def test_a_memory_hog_is_stopped_naming_the_builds_memory_limit(builder: Builder) -> None:
    message = builder.fails('python3 -c "x = bytearray(200 * 1024 * 1024)"\n')
    assert message.startswith(
        "Buildpack bp: bin/compile was stopped: the build ran out of memory — it may use 64.0M, "
        "its /tmp included (setting build.memory_bytes, DOCKYARD_BUILD_MEMORY_BYTES)"
    )


def test_filling_tmp_uses_the_builds_memory_and_leaves_nothing_on_the_host(
    builder: Builder,
) -> None:
    message = builder.fails(
        'd=$(mktemp -d /tmp/fill.XXXXXX)\ni=0\nwhile :; do head -c 65536 /dev/zero > "$d/$i"; '
        "i=$((i + 1)); done\n"
    )
    assert "the build ran out of memory — it may use 64.0M, its /tmp included" in message
    assert list(Path("/tmp").glob("fill.*")) == []


def test_the_compile_timeout_kills_the_container(
    tmp_path: Path, settings: Settings, containers: RuncBuildContainers
) -> None:
    builder = Builder(tmp_path, settings, containers, timeout=0.5)
    message = builder.fails("sleep 30\n")
    assert message.startswith(
        "Buildpack bp: bin/compile did not finish within 0.5 s, the compile timeout, and was "
        "stopped — make the build faster or raise the timeout (setting build.compile_timeout, "
        "DOCKYARD_BUILD_COMPILE_TIMEOUT)"
    )


def test_a_daemon_left_behind_by_compile_is_gone_with_its_container(builder: Builder) -> None:
    builder.build("setsid sleep 300 > /dev/null 2>&1 &\necho started\n")
    assert "build user 1000" in builder.lines
    assert processes_of(builder.host_uid) == []


# -- network -------------------------------------------------------------------------------------------


@pytest.fixture
def outside() -> Iterator[Outside]:
    with outside_world(1) as world:
        yield world


def test_a_build_reaches_the_outside_but_no_port_of_the_host_nor_another_dyno(
    builder: Builder, settings: Settings, outside: Outside
) -> None:
    network = DynoNetwork(settings)
    port = free_port()
    platform = serve(None, "0.0.0.0", port)  # a platform port, on every address of the host  # noqa: S104
    dyno_id = str(uuid.uuid4())
    dyno = network.attach(dyno_id, "app-2")
    web = serve(dyno.netns_path.name, "0.0.0.0", 5000)  # noqa: S104
    gateway = network.router_source()
    targets = [
        f"{outside.address}:8000",
        f"127.0.0.1:{port}",
        f"{gateway}:{port}",
        f"{outside.host_address}:{port}",
        f"{dyno.address}:5000",
    ]
    try:
        builder.build(f"python3 -c '{CLIENT}' {' '.join(targets)} > \"$1/reached\"\n")
    finally:
        stop(platform)
        stop(web)
        network.detach(dyno_id)

    unpacked = builder.base / "unpacked"
    [digest] = builder.slugs.digests()
    extract_image(builder.slugs.get(digest), unpacked)
    lines = (unpacked / "reached").read_text().splitlines()
    assert lines[0] == f"{outside.address}:8000 hello {outside.host_address}"  # masqueraded
    for line in lines[1:]:
        assert " refused " in line, lines
    assert len(lines) == len(targets)


def test_a_build_whose_lease_was_taken_for_a_stale_one_attaches_again(
    containers: RuncBuildContainers, settings: Settings, tmp_path: Path, outside: Outside
) -> None:
    scratch = tmp_path / "build-x"
    scratch.mkdir(mode=0o711)
    build = containers.open(
        uuid.uuid4().hex,
        "app-1",
        scratch,
        memory_bytes=64 << 20,
        max_processes=32,
        file_bytes=1 << 20,
    )
    try:
        DynoNetwork(settings).detach(lease_id(build.id))  # what a dyno manager's sweep would do

        done = build.run(
            ["/usr/bin/python3", "-c", CLIENT, f"{outside.address}:8000"],
            cwd=scratch,
            env={},
            timeout=30,
        )
    finally:
        build.close()
    assert done.text == f"{outside.address}:8000 hello {outside.host_address}\n"
    assert lease_id(build.id) not in DynoNetwork(settings).attachments()


# -- the stack image's versions ------------------------------------------------------------------------


def test_python_and_node_versions_are_checked_against_the_build_stack_image(
    builder: Builder, containers: RuncBuildContainers, settings: Settings
) -> None:
    stack = ImageStack(containers, settings.cache_dir / "stacks")
    python, node = stack.default_python(), stack.node()
    assert python is not None and node is not None
    assert (python.executable, python.minor) == (Path("/usr/bin/python3"), "3.11")
    assert (settings.cache_dir / "stacks" / f"{containers.label}.json").is_file()
    source = write_tree(builder.base / "py", {"requirements.txt": "", ".python-version": "3.12\n"})
    with pytest.raises(CompileError) as caught:
        builder.pipeline.run("a", source, {}, None, BuildOutput(), [PythonBuildpack(stack)])
    assert (
        "Python 3.12, requested in .python-version, is not available on this stack. "
        f"Available: {python.label}." in caught.value.message
    )
    newer = f">{node.label}"
    package = json.dumps({"engines": {"node": newer}})
    source = write_tree(builder.base / "js", {"package.json": package})
    with pytest.raises(CompileError) as caught:
        builder.pipeline.run("a", source, {}, None, BuildOutput(), [NodejsBuildpack(stack)])
    assert f"this stack has Node.js {node.label}" in caught.value.message


def test_deploys_choose_the_container_sandbox_and_the_image_stack_when_they_can(
    settings: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings, build=dataclasses.replace(settings.build, sandbox="runc")
    )
    containers, stack = build_sandbox(settings)
    assert isinstance(containers, RuncBuildContainers)
    assert isinstance(stack, ImageStack)
    missing = dataclasses.replace(
        settings, runtime=dataclasses.replace(settings.runtime, stacks_dir=str(tmp_path))
    )
    containers, stack = build_sandbox(missing)
    assert isinstance(containers, RuncBuildContainers)  # the pipeline falls back and says why
    assert isinstance(stack, HostStack)
    uid = dataclasses.replace(settings, build=dataclasses.replace(settings.build, sandbox="uid"))
    containers, stack = build_sandbox(uid)
    assert containers is None
    assert isinstance(stack, HostStack)


# -- fallback ------------------------------------------------------------------------------------------


def test_without_the_build_stack_image_the_build_runs_in_the_uid_sandbox_and_says_so(
    settings: Settings,
) -> None:
    with reachable_dir() as base:  # the uid sandbox's build user must reach its scratch directory
        empty = base / "no-stacks"
        empty.mkdir()
        bare = dataclasses.replace(
            settings, runtime=dataclasses.replace(settings.runtime, stacks_dir=str(empty))
        )
        builder = Builder(base, bare, RuncBuildContainers(bare), timeout=30)

        builder.build('id -u > "$1/uid"\n')

    [warning] = [line for line in builder.lines if line.startswith(" !")]
    assert warning == (
        " !     Warning: this build runs on the host, not in the container sandbox, because the "
        "build stack image dockyard-12-build is not built on this host — build it with: "
        "dockyard stack:build --variant build"
    )
    uid = [line for line in builder.lines if line.startswith("build user ")]
    assert UID_BASE <= int(uid[0].split()[-1]) < UID_BASE + UID_SLOTS
