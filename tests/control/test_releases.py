"""app.json on deploys (env, formation, scripts.postdeploy on the first deploy; a malformed file or a
missing required var fails the build), through ``deploy_push`` with real git and real processes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.output import BuildOutput
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.deploys import deploy_push
from dockyard.control.releases import append_release
from dockyard.errors import InvalidError
from dockyard.runtime.process import ProcessRuntime
from dockyard.store.records import App
from tests.control.test_deploys import ZERO, Repo
from tests.runtime.slugs import clean_up

PROCFILE = "web: python3 -m http.server $PORT\nworker: sleep 1000\n"
MANIFEST = {
    "name": "Shop",
    "env": {
        "SECRET_KEY": {"description": "signs sessions", "generator": "secret"},
        "MODE": {"value": "production"},
        "KEPT": {"value": "from app.json"},
    },
    "formation": {
        "web": {"quantity": 2, "size": "standard-2x"},
        "worker": {"quantity": 1},
        "clock": {"quantity": 1},
    },
    "scripts": {"postdeploy": "echo seeded in $MODE"},
}


@pytest.fixture
def owner(platform: Platform) -> Iterator[NewUser]:
    yield create_user(platform, "owner@example.com")
    clean_up(ProcessRuntime(platform.settings))


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    with platform.store.transaction() as tx:
        created = tx.create_app("shop", owner.account.id, STACK)
        append_release(
            tx, created, slug_id=None, config={}, description="Initial release", user=owner.account
        )
        tx.replace_config(created.id, {"KEPT": "mine"})
    return created


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def _push(platform: Platform, app: App, owner: NewUser, sha: str, repo: Repo) -> list[str]:
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


def test_the_first_deploy_applies_app_json_once(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    sha = repo.commit({"Procfile": PROCFILE, "app.json": json.dumps(MANIFEST)})

    lines = _push(platform, app, owner, sha, repo)

    with platform.store.read() as tx:
        config = tx.get_config(app.id)
        release = tx.current_release(app.id)
        formation = {f.type: (f.quantity, f.size) for f in tx.list_formation(app.id)}
    assert release is not None and release.version == 2
    assert re.fullmatch(r"[0-9a-f]{64}", config["SECRET_KEY"])
    assert (config["MODE"], config["KEPT"]) == ("production", "mine")
    assert dict(release.config) == config  # the config change is part of the deploy's release
    assert formation == {"web": (2, "standard-2x"), "worker": (1, "standard-1x")}
    assert (
        "       app.json: formation.clock skipped: the app declares no clock process type" in lines
    )
    assert "seeded in production" in lines
    assert lines[-1] == "Postdeploy script.... done."
    logged = [(x.source, x.dyno, x.message) for x in platform.logs.tail(app.id, 50)]
    assert ("app", "postdeploy.2", "seeded in production") in logged

    with platform.store.transaction() as tx:
        tx.update_formation(app.id, "web", quantity=1)
    second = repo.commit({"README": "again"})
    lines = _push(platform, app, owner, second, repo)

    assert "seeded in production" not in lines
    with platform.store.read() as tx:
        assert tx.get_config(app.id)["SECRET_KEY"] == config["SECRET_KEY"]
        assert tx.get_formation(app.id, "web").quantity == 1


def test_missing_required_config_vars_fail_the_first_deploy(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    manifest = {"env": {"API_TOKEN": {"description": "from the provider"}, "KEPT": {}}}
    sha = repo.commit({"Procfile": PROCFILE, "app.json": json.dumps(manifest)})
    lines: list[str] = []

    with pytest.raises(InvalidError, match="required config var not set: API_TOKEN"):
        deploy_push(
            platform,
            app.id,
            owner.account.id,
            [(ZERO, sha, "refs/heads/main")],
            repo.path,
            BuildOutput(lines.append),
        )

    assert any("config:set API_TOKEN=..." in line for line in lines)
    with platform.store.read() as tx:
        assert [r.version for r in tx.list_releases(app.id)] == [1]
        assert [b.status for b in tx.list_builds(app.id)] == ["failed"]
        assert tx.get_config(app.id) == {"KEPT": "mine"}


def test_a_malformed_app_json_fails_the_build_naming_the_key(
    platform: Platform, app: App, owner: NewUser, repo: Repo
) -> None:
    manifest = {"formation": {"web": {"quantity": "lots"}}}
    sha = repo.commit({"Procfile": PROCFILE, "app.json": json.dumps(manifest)})
    lines: list[str] = []

    with pytest.raises(InvalidError):
        deploy_push(
            platform,
            app.id,
            owner.account.id,
            [(ZERO, sha, "refs/heads/main")],
            repo.path,
            BuildOutput(lines.append),
        )

    assert " !     app.json: formation.web.quantity must be a whole number" in lines
    with platform.store.read() as tx:
        assert [r.version for r in tx.list_releases(app.id)] == [1]
