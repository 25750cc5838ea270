"""The release phase with real processes: pending → succeeded or failed, output on the release and
in the log, the timeout, and config changes and rollbacks that run it in the background."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.output import BuildOutput
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.config import update_config
from dockyard.control.context import STACK, Platform
from dockyard.control.releasephase import (
    INTERRUPTED,
    KIND_LABEL,
    SUPERVISOR_LABEL,
    recover,
    run_release_phase,
)
from dockyard.control.releases import append_release, rollback
from dockyard.runtime.base import DynoSpec, RunningDyno
from dockyard.runtime.process import ProcessRuntime
from dockyard.settings import Settings
from dockyard.slug.image import make_image
from dockyard.store.records import App, Release
from tests.conftest import make_settings
from tests.runtime.slugs import clean_up

MIGRATE_OK = '#!/bin/sh\necho "migrating with $MODE"\necho "to stderr" >&2\n'
MIGRATE_FAIL = '#!/bin/sh\necho "cannot reach the database"\nexit 3\n'


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", DOCKYARD_BUILD_RELEASE_PHASE_TIMEOUT="2")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[ProcessRuntime]:
    runtime = ProcessRuntime(settings)
    yield runtime
    clean_up(runtime)


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    with platform.store.transaction() as tx:
        created = tx.create_app("shipit", owner.account.id, STACK)
        append_release(
            tx, created, slug_id=None, config={}, description="Initial release", user=owner.account
        )
        tx.replace_config(created.id, {"MODE": "blue"})
    return created


def make_slug(platform: Platform, tmp_path: Path, migrate: str, release: str) -> str:
    """A slug record whose image has ``migrate.sh`` and declares ``release`` and ``web``."""
    source = tmp_path / f"source-{len(list(tmp_path.iterdir()))}"
    source.mkdir()
    (source / "migrate.sh").write_text(migrate)
    (source / "migrate.sh").chmod(0o755)
    image = tmp_path / "slug.squashfs"
    make_image(source, image)
    digest, size = platform.slugs.put(image)
    with platform.store.transaction() as tx:
        app = tx.get_app("shipit")
        slug = tx.create_slug(
            app.id,
            digest=digest,
            size=size,
            process_types={"release": release, "web": "sleep 1000"},
            commit=None,
            stack=STACK,
        )
    return slug.id


def release_of(platform: Platform, app: App, slug_id: str, owner: NewUser) -> Release:
    with platform.store.transaction() as tx:
        return append_release(
            tx,
            app,
            slug_id=slug_id,
            config=tx.get_config(app.id),
            description="Deploy",
            user=owner.account,
        )


def wait_settled(platform: Platform, app: App, version: int) -> Release:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with platform.store.read() as tx:
            release = tx.get_release(app.id, version)
        if release.status != "pending":
            return release
        time.sleep(0.05)
    raise AssertionError(f"v{version} stayed pending")


def test_a_release_with_a_release_command_starts_pending_without_a_formation_entry(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path
) -> None:
    release = release_of(
        platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "./migrate.sh"), owner
    )
    assert release.status == "pending"
    with platform.store.read() as tx:
        assert [f.type for f in tx.list_formation(app.id)] == ["web"]
        assert tx.current_release(app.id) is not None
        assert tx.current_release(app.id).version == 1  # type: ignore[union-attr]


def test_a_successful_release_command_makes_the_release_current(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, runtime: ProcessRuntime
) -> None:
    release = release_of(
        platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "./migrate.sh"), owner
    )
    lines: list[str] = []

    finished, reason = run_release_phase(
        platform, app, release, output=BuildOutput(lines.append), runtime=runtime
    )

    assert reason is None
    assert finished.status == "succeeded"
    assert "migrating with blue\n" in finished.output and "to stderr\n" in finished.output
    assert lines[:3] == ["", "Running release command...", ""]
    assert "migrating with blue" in lines
    assert lines[-1] == "Waiting for release.... done."
    with platform.store.read() as tx:
        assert tx.current_release(app.id) == finished
    logged = [(x.source, x.dyno, x.message) for x in platform.logs.tail(app.id, 20)]
    assert ("app", "release.2", "migrating with blue") in logged
    assert ("heroku", "release.2", "Starting process with command `./migrate.sh`") in logged
    assert ("heroku", "release.2", "Process exited with status 0") in logged
    assert runtime.list() == []  # the one-off process is forgotten once it has run


def test_a_failing_release_command_fails_the_release_and_keeps_the_previous_one(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, runtime: ProcessRuntime
) -> None:
    good = release_of(
        platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "./migrate.sh"), owner
    )
    run_release_phase(platform, app, good, runtime=runtime)
    bad = release_of(
        platform, app, make_slug(platform, tmp_path, MIGRATE_FAIL, "./migrate.sh"), owner
    )
    lines: list[str] = []

    finished, reason = run_release_phase(
        platform, app, bad, output=BuildOutput(lines.append), runtime=runtime
    )

    assert reason == "the command `./migrate.sh` exited with status 3"
    assert finished.status == "failed"
    assert finished.output == f"cannot reach the database\n{reason}\n"
    assert lines[-1] == "Waiting for release.... failed."
    with platform.store.read() as tx:
        assert tx.current_release(app.id).version == good.version  # type: ignore[union-attr]


def test_a_release_command_that_runs_too_long_is_stopped(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, runtime: ProcessRuntime
) -> None:
    release = release_of(
        platform,
        app,
        make_slug(platform, tmp_path, MIGRATE_OK, "echo started; exec sleep 60"),
        owner,
    )
    started = time.monotonic()

    finished, reason = run_release_phase(platform, app, release, runtime=runtime)

    assert time.monotonic() - started < 20
    assert finished.status == "failed"
    assert (
        reason
        == "the command `echo started; exec sleep 60` did not finish within 2 seconds and was stopped"
    )
    assert finished.output.startswith("started\n")
    assert runtime.list() == []


def test_a_command_that_cannot_start_fails_the_release(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, runtime: ProcessRuntime
) -> None:
    release = release_of(
        platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "./migrate.sh"), owner
    )
    assert release.slug_id is not None
    with platform.store.read() as tx:
        platform.slugs.delete(tx.get_slug(release.slug_id).digest)

    finished, reason = run_release_phase(platform, app, release, runtime=runtime)

    assert finished.status == "failed"
    assert reason is not None and "could not start" in reason


def test_config_changes_and_rollbacks_run_the_release_phase_in_the_background(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, settings: Settings
) -> None:
    try:
        first = release_of(
            platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "./migrate.sh"), owner
        )
        run_release_phase(platform, app, first)

        update_config(platform, owner.account, "shipit", {"MODE": "green"})
        changed = wait_settled(platform, app, first.version + 1)
        assert changed.status == "succeeded"
        assert "migrating with green\n" in changed.output

        back = rollback(platform, owner.account, "shipit", str(first.version))
        assert back.status == "pending"  # the API answers at once
        assert wait_settled(platform, app, back.version).output.startswith("migrating with blue\n")
    finally:
        clean_up(ProcessRuntime(settings))


class RecordingRuntime(ProcessRuntime):
    """A process runtime that remembers the specs it started."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.started: list[DynoSpec] = []

    def start(self, spec: DynoSpec) -> RunningDyno:
        self.started.append(spec)
        return super().start(spec)


def test_one_off_processes_carry_the_label_the_dyno_manager_skips(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, settings: Settings
) -> None:
    release = release_of(platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "true"), owner)
    runtime = RecordingRuntime(settings)
    try:
        run_release_phase(platform, app, release, runtime=runtime)
    finally:
        clean_up(runtime)
    [spec] = runtime.started
    assert (spec.name, spec.process_type, dict(spec.labels)) == (
        "release.2",
        "release",
        {KIND_LABEL: "release", SUPERVISOR_LABEL: str(os.getpid())},
    )
    assert spec.env == {"MODE": "blue"}


def test_recovery_fails_release_phases_nobody_supervises(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path, runtime: ProcessRuntime
) -> None:
    orphan = release_of(platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "true"), owner)
    watched = release_of(platform, app, make_slug(platform, tmp_path, MIGRATE_OK, "true"), owner)
    assert watched.slug_id is not None
    supervisor = subprocess.Popen(["sleep", "60"])  # stands in for a git hook that still waits
    try:
        with platform.store.read() as tx:
            digest = tx.get_slug(watched.slug_id).digest
        spec = DynoSpec(
            id=str(uuid.uuid4()),
            app_id=app.id,
            app_name=app.name,
            name=f"release.{watched.version}",
            process_type="release",
            release_version=int(watched.version),
            slug_digest=digest,
            command="sleep 60",
            env={},
            size="standard-1x",
            labels={KIND_LABEL: "release", SUPERVISOR_LABEL: str(supervisor.pid)},
        )
        runtime.start(spec)

        assert [r.version for r in recover(platform, runtime=runtime)] == [orphan.version]
        with platform.store.read() as tx:
            assert tx.get_release(app.id, orphan.version).output.endswith(INTERRUPTED)
            assert tx.get_release(app.id, watched.version).status == "pending"

        supervisor.kill()
        supervisor.wait()
        assert [r.version for r in recover(platform, runtime=runtime)] == [watched.version]
        assert [d.state for d in runtime.list()] == []
    finally:
        supervisor.kill()
        supervisor.wait()
