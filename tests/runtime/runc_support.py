"""Shared by the runc runtime tests and the sandbox e2e tests.

The stack image is built once per machine (``debootstrap``, a few minutes) into
``$DOCKYARD_TEST_CACHE`` (default ``/var/cache/dockyard-tests``), in a directory named after the stack's
package list, and reused by every later run; downloaded packages are kept there too. Data directories live
under ``/var/tmp`` because runc's init, inside a dyno's user namespace, must be able to reach them (pytest's
own temporary directories are private to root).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.runtime.base import DynoSpec, RunningDyno
from dockyard.runtime.runc import RuncRuntime
from dockyard.runtime.stack import STACK_PACKAGES, StackImages
from dockyard.settings import Settings
from dockyard.slug.mount import mount_points
from dockyard.slug.store import SlugStore
from tests.conftest import make_settings
from tests.runtime.slugs import build_slug

CACHE_VAR = "DOCKYARD_TEST_CACHE"
DEFAULT_CACHE = Path("/var/cache/dockyard-tests")


def missing_requirements() -> str | None:
    """Why runc dynos cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("runc", "debootstrap", "mksquashfs"):
        if shutil.which(tool) is None:
            return f"needs {tool} (scripts/bootstrap installs it)"
    return None


requires_runc = pytest.mark.skipif(
    missing_requirements() is not None, reason=missing_requirements() or ""
)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_VAR, str(DEFAULT_CACHE)))


@functools.cache
def stacks_dir() -> Path:
    """A directory with a built stack image, built on first use and kept for the next runs."""
    packages = hashlib.sha256(",".join(STACK_PACKAGES).encode()).hexdigest()[:10]
    root = cache_root()
    directory = root / f"stacks-{packages}"
    settings = make_settings(
        root / "data",
        DOCKYARD_RUNTIME_STACKS_DIR=str(directory),
    )
    images = StackImages(settings)
    if images.current() is None:
        # The one build of a machine (minutes) does not count against the per-test timeout of whichever test
        # comes first: pytest-timeout's alarm is paused meanwhile and resumed with what it had left.
        remaining, _interval = signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            images.build(deb_cache=root / "debs")
        finally:
            if remaining:
                signal.setitimer(signal.ITIMER_REAL, remaining)
    return directory


@contextlib.contextmanager
def reachable_dir() -> Iterator[Path]:
    """A fresh directory whose path a dyno's user namespace can traverse; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-runc-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for point in sorted(mount_points(), key=lambda p: len(p.parts), reverse=True):
            if base in point.parents:
                proc.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)


def runc_settings(base: Path, **env: str) -> Settings:
    values = {
        "DOCKYARD_RUNTIME_STACKS_DIR": str(stacks_dir()),
        "DOCKYARD_RUNTIME_RUN_DIR": str(base / "run"),
    }
    values.update(env)
    return make_settings(base / "data", **values)


def stop_all(runtime: RuncRuntime) -> None:
    for dyno in runtime.list():
        runtime.stop(dyno.spec.id, timeout=1)
    runtime.release_unused(set())


@contextlib.contextmanager
def runc_runtime(**env: str) -> Iterator[tuple[RuncRuntime, str]]:
    """A RuncRuntime (loopback-only dynos) on a fresh data directory, and a slug with ``app.py``."""
    with reachable_dir() as base:
        settings = runc_settings(base, **env)
        runtime = RuncRuntime(settings, network="none")
        slug = build_slug(base, SlugStore(settings.slugs_dir))
        try:
            yield runtime, slug
        finally:
            stop_all(runtime)


def spec(
    slug: str,
    command: str,
    *,
    name: str = "web.1",
    app: str = "app-1",
    size: str = "standard-1x",
    env: Mapping[str, str] | None = None,
) -> DynoSpec:
    return DynoSpec(
        id=str(uuid.uuid4()),
        app_id=app,
        app_name=f"demo-{app}",
        name=name,
        process_type=name.split(".")[0],
        release_version=3,
        slug_digest=slug,
        command=command,
        env=dict(env or {"GREETING": "hello world"}),
        size=size,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait for a real process to get somewhere; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout:g} s")
        time.sleep(0.02)


def current(runtime: RuncRuntime, dyno_id: str) -> RunningDyno:
    matches = [d for d in runtime.list() if d.spec.id == dyno_id]
    assert len(matches) == 1
    return matches[0]


def run_to_end(
    runtime: RuncRuntime, dyno: DynoSpec, timeout: float = 20.0
) -> tuple[int | None, str]:
    """Start a dyno, wait for it to exit, return its exit code and output."""
    started = runtime.start(dyno)
    wait_for(lambda: current(runtime, dyno.id).state == "exited", timeout, "the dyno's exit")
    assert started.output_path is not None
    return current(runtime, dyno.id).exit_code, started.output_path.read_text()


def pids_of(runtime: RuncRuntime, dyno_id: str) -> int:
    usage = runtime.usage(dyno_id)
    return 0 if usage is None else usage.pids


def output_of(runtime: RuncRuntime, dyno_id: str) -> str:
    path = current(runtime, dyno_id).output_path
    assert path is not None
    return path.read_text()
