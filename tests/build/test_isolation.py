"""Build isolation with real processes: buildpacks run as a user of their own with resource limits,
and a fork bomb, a disk filler, a huge file, a memory hog, a slow build and a left-behind daemon are
each stopped with a message naming the limit and its setting, leaving nothing running."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.buildpacks import ClassicBuildpack
from dockyard.build.isolation import UID_BASE, UID_LOCK_DIR, UID_SLOTS
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline, BuildResult
from dockyard.errors import CompileError
from dockyard.settings import BuildSettings
from dockyard.slug.image import extract_image
from dockyard.slug.store import SlugStore
from tests.build.conftest import write_buildpack, write_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="build users need root")

LIMITS = BuildSettings(max_processes=32, disk_bytes=2 << 20, memory_bytes=64 << 20)


def _processes_of(uid: int) -> list[str]:
    """Live (not zombie) processes of ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(f"{entry.name} {fields['Name'].strip()}")
    return found


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the build user can reach (pytest's own temporary directories are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-isolation-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Builder:
    def __init__(self, base: Path, settings: BuildSettings, timeout: float) -> None:
        self.base = base
        self.slugs = SlugStore(base / "slugs")
        self.pipeline = BuildPipeline(
            self.slugs, base / "work", base / "cache", timeout, settings=settings
        )
        self.lines: list[str] = []

    def build(self, compile_body: str) -> BuildResult:
        source = write_tree(self.base / "src", {"Procfile": "web: ./run\n"})
        buildpack = write_buildpack(
            self.base / "bp",
            {"detect": "echo Shell\n", "compile": 'echo "build user $(id -u)"\n' + compile_body},
        )
        try:
            return self.pipeline.run(
                "app-1",
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
    def uid(self) -> int:
        [line] = [line for line in self.lines if line.startswith("build user ")]
        return int(line.split()[-1])

    def fails(self, compile_body: str) -> str:
        with pytest.raises(CompileError) as caught:
            self.build(compile_body)
        assert _processes_of(self.uid) == []
        assert list((self.base / "work").glob("build-*")) == []
        assert self.slugs.digests() == set()
        return caught.value.message


@pytest.fixture
def builder(base: Path) -> Builder:
    return Builder(base, LIMITS, timeout=20)


def test_buildpacks_run_as_an_unprivileged_user_of_their_own_with_limits(
    builder: Builder,
) -> None:
    result = builder.build(
        'id -u > "$1/uid"\n'
        'ulimit -c > "$1/core"; ulimit -d > "$1/data"; ulimit -f > "$1/fsize"\n'
        'echo "$TMPDIR" > "$1/tmpdir"\n'
        'cat /etc/shadow > "$1/shadow" 2>/dev/null || echo denied > "$1/shadow"\n'
        "touch /tmp/dockyard-isolation-test-left-behind\n"
    )

    unpacked = builder.base / "unpacked"
    extract_image(builder.slugs.get(result.digest), unpacked)
    assert UID_BASE <= int((unpacked / "uid").read_text()) < UID_BASE + UID_SLOTS
    assert (unpacked / "core").read_text() == "0\n"
    assert (unpacked / "data").read_text() == f"{64 * 1024}\n"
    assert (unpacked / "fsize").read_text() == f"{2 * 1024 * 2}\n"  # 512-byte blocks
    assert "/work/build-" in (unpacked / "tmpdir").read_text()
    assert (unpacked / "shadow").read_text() == "denied\n"
    assert os.stat(unpacked / "uid").st_uid == 0  # the slug is root's
    assert not Path("/tmp/dockyard-isolation-test-left-behind").exists()
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


def test_filling_the_shared_tmp_counts_too_and_is_removed(builder: Builder) -> None:
    message = builder.fails(
        'd=$(mktemp -d /tmp/fill.XXXXXX)\ni=0\nwhile :; do head -c 65536 /dev/zero > "$d/$i"; '
        "i=$((i + 1)); done\n"
    )
    assert "the build used more than 2.0M of disk space" in message
    assert list(Path("/tmp").glob("fill.*")) == []


def test_a_file_larger_than_the_disk_limit_is_cut_off(builder: Builder) -> None:
    message = builder.fails('head -c 10000000 /dev/zero > "$1/big"\n')
    assert "exited with code 153. A file grew past 2.0M, the disk limit for a build" in message


def test_a_memory_hog_fails_with_the_memory_limit_named(builder: Builder) -> None:
    message = builder.fails('python3 -c "x = bytearray(200 * 1024 * 1024)"\n')
    assert "It ran out of memory: each build process may use 64.0M" in message
    assert "build.memory_bytes" in message


def test_the_compile_timeout_names_itself_and_its_setting(base: Path) -> None:
    builder = Builder(base, LIMITS, timeout=0.5)
    message = builder.fails("sleep 30\n")
    assert message.startswith(
        "Buildpack bp: bin/compile did not finish within 0.5 s, the compile timeout, and was "
        "stopped — make the build faster or raise the timeout (setting build.compile_timeout, "
        "DOCKYARD_BUILD_COMPILE_TIMEOUT)"
    )


def test_a_daemon_left_behind_by_compile_is_killed(builder: Builder) -> None:
    builder.build("setsid sleep 300 > /dev/null 2>&1 &\necho started\n")
    assert UID_BASE <= builder.uid < UID_BASE + UID_SLOTS
    assert _processes_of(builder.uid) == []


def test_without_a_reachable_scratch_directory_builds_run_as_root_with_a_warning(
    tmp_path: Path,
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    builder = Builder(private, LIMITS, timeout=20)

    result = builder.build('id -u > "$1/uid"\n')

    unpacked = tmp_path / "unpacked"
    extract_image(builder.slugs.get(result.digest), unpacked)
    assert (unpacked / "uid").read_text() == "0\n"
    [warning] = [line for line in builder.lines if line.startswith(" !")]
    assert "buildpacks run as root because" in warning
    assert "chmod o+x" in warning


def test_builds_of_two_data_directories_on_one_host_never_share_a_build_user(base: Path) -> None:
    """Build users are host-wide, and so are their slot locks: a build of another Dockyard on the
    same machine (a test run next to a dev instance) takes another id, and claiming it does not
    kill the first build's processes."""
    go = base / "go"
    first, second = (Builder(base / name, LIMITS, timeout=20) for name in ("one", "two"))
    for builder in (first, second):
        builder.base.mkdir(mode=0o711)
    results: list[BuildResult] = []
    errors: list[BaseException] = []

    def build_first() -> None:
        try:
            results.append(first.build(f'while [ ! -e "{go}" ]; do sleep 0.02; done\n'))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    waiting = threading.Thread(target=build_first)
    waiting.start()
    try:
        deadline = time.monotonic() + 10
        while not any(line.startswith("build user ") for line in first.lines):
            assert time.monotonic() < deadline, first.lines
            time.sleep(0.02)
        second.build("true\n")
    finally:
        go.touch()
        waiting.join(30)

    assert errors == []
    assert len(results) == 1
    assert second.uid != first.uid
    assert UID_LOCK_DIR.is_dir()
