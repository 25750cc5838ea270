"""Release phase, end to end with real git, the build pipeline and real processes: a push whose
``release: ./migrate.sh`` succeeds is deployed; the next push whose command fails is rejected, its
release is ``failed`` with the output stored, and the previous release keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.output import BuildOutput
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.dataplane import desired_dynos
from dockyard.control.deploys import deploy_push
from dockyard.control.releases import append_release
from dockyard.errors import BuildError
from dockyard.runtime.process import ProcessRuntime
from dockyard.store.records import App
from tests.control.test_deploys import ZERO, Repo
from tests.runtime.slugs import clean_up

PROCFILE = "release: ./migrate.sh\nweb: python3 -m http.server $PORT\n"


@pytest.fixture
def owner(platform: Platform) -> Iterator[NewUser]:
    yield create_user(platform, "owner@example.com")
    clean_up(ProcessRuntime(platform.settings))


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    with platform.store.transaction() as tx:
        created = tx.create_app("migrator", owner.account.id, STACK)
        append_release(
            tx, created, slug_id=None, config={}, description="Initial release", user=owner.account
        )
        tx.replace_config(created.id, {"DATABASE_URL": "postgres://db/migrator"})
    return created


def _push(platform: Platform, app: App, owner: NewUser, repo: Repo, sha: str) -> list[str]:
    lines: list[str] = []
    deploy_push(
        platform,
        app.id,
        owner.account.id,
        [(ZERO, sha, "refs/heads/main")],
        repo.path,
        BuildOutput(lines.append),
    )
    return lines


def _commit_migration(repo: Repo, script: str) -> str:
    (repo.path / "migrate.sh").write_text(script)
    (repo.path / "migrate.sh").chmod(0o755)
    return repo.commit({"Procfile": PROCFILE})


def test_release_phase_gates_the_deploy(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path
) -> None:
    repo = Repo(tmp_path / "repo")

    good = _commit_migration(repo, '#!/bin/sh\necho "Migrated $DATABASE_URL"\n')
    lines = _push(platform, app, owner, repo, good)

    assert (
        " !     Release command declared: this new release will not be available until the command succeeds."
        in lines
    )
    assert lines[-2:] == ["Migrated postgres://db/migrator", "Waiting for release.... done."]
    with platform.store.read() as tx:
        v2 = tx.get_release(app.id, 2)
        assert tx.current_release(app.id) == v2
    assert v2.status == "succeeded"
    assert v2.output == "Migrated postgres://db/migrator\n"

    bad = _commit_migration(repo, '#!/bin/sh\necho "relation users already exists" >&2\nexit 1\n')
    lines = []
    with pytest.raises(BuildError, match="Release v3 failed"):
        deploy_push(
            platform,
            app.id,
            owner.account.id,
            [(ZERO, bad, "refs/heads/main")],
            repo.path,
            BuildOutput(lines.append),
        )

    assert "Waiting for release.... failed." in lines
    assert lines[-1] == (
        " !     Release v3 failed: the command `./migrate.sh` exited with status 1. "
        "It was not deployed; v2 keeps serving."
    )
    with platform.store.read() as tx:
        v3 = tx.get_release(app.id, 3)
        assert tx.current_release(app.id) == v2
        builds = tx.list_builds(app.id)
    assert v3.status == "failed"
    assert v3.output == (
        "relation users already exists\nthe command `./migrate.sh` exited with status 1\n"
    )
    assert [b.status for b in builds] == ["succeeded", "succeeded"]  # the build itself worked
    assert {d.release_version for d in desired_dynos(platform, "localhost")} == {2}
    logged = [(x.source, x.dyno, x.message) for x in platform.logs.tail(app.id, 50)]
    assert ("app", "release.3", "relation users already exists") in logged
