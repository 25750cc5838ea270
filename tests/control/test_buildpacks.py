"""Buildpack references: aliases of the built-ins, URLs, and the operator's local directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.build.output import BuildOutput
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.buildpacks import (
    MAX_BUILDPACKS,
    canonical_buildpack,
    canonical_list,
    local_buildpacks_dir,
    replace_installations,
)
from dockyard.control.context import STACK, Platform
from dockyard.control.deploys import deploy_push
from dockyard.control.releases import append_release
from dockyard.errors import InvalidError
from dockyard.settings import Settings
from dockyard.slug.image import extract_image
from dockyard.store.records import App
from tests.control.test_deploys import ZERO, Repo


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("heroku/python", "heroku/python"),
        ("Python", "heroku/python"),
        ("urn:buildpack:heroku/nodejs", "heroku/nodejs"),
        ("https://github.com/heroku/heroku-buildpack-nodejs.git", "heroku/nodejs"),
        ("https://codon-buildpacks.s3.amazonaws.com/buildpacks/heroku/static.tgz", "heroku/static"),
        ("heroku-community/static", "heroku/static"),
        ("procfile", "dockyard/procfile"),
        ("dockyard/python", "heroku/python"),
    ],
)
def test_builtin_aliases(reference: str, expected: str, settings: Settings) -> None:
    assert canonical_buildpack(reference, settings) == (expected, expected)


def test_urls_keep_their_text_and_get_a_short_name(settings: Settings) -> None:
    assert canonical_buildpack(" https://example.com/bps/ffmpeg.tgz ", settings) == (
        "https://example.com/bps/ffmpeg.tgz",
        "ffmpeg",
    )
    assert canonical_buildpack("http://git.example.com/", settings) == (
        "http://git.example.com/",
        "git.example.com",
    )


def test_local_paths_are_normalised_inside_the_operator_directory(settings: Settings) -> None:
    root = local_buildpacks_dir(settings)
    (root / "bp").mkdir(parents=True)
    assert canonical_buildpack(f"{root}//bp/", settings) == (f"{root}/bp", "bp")
    with pytest.raises(InvalidError, match="operator's buildpack directory"):
        canonical_buildpack(f"{root}/bp/../../slugs", settings)
    with pytest.raises(InvalidError, match="names a path on this server"):
        canonical_buildpack(f"file://otherhost{root}/bp", settings)


def test_lists_are_limited(settings: Settings) -> None:
    urls = [f"https://example.com/bp{i}.git" for i in range(MAX_BUILDPACKS + 1)]
    with pytest.raises(InvalidError, match=f"at most {MAX_BUILDPACKS} buildpacks"):
        canonical_list(urls, settings)
    assert len(canonical_list(urls[:-1], settings)) == MAX_BUILDPACKS


# -- deploys use the installations, else app.json's buildpacks, else detection ------------------


def _classic(root: Path, name: str) -> Path:
    """A classic buildpack that applies to anything and leaves a file naming itself in the slug."""
    path = root / name
    (path / "bin").mkdir(parents=True)
    scripts = {
        "detect": f"#!/bin/sh\necho {name}\n",
        "compile": f'#!/bin/sh\necho "-----> {name} compiling"\necho {name} > "$1/built-by"\n',
        "release": "#!/bin/sh\necho '--- {}'\n",
    }
    for script, text in scripts.items():
        (path / "bin" / script).write_text(text)
        (path / "bin" / script).chmod(0o755)
    return path


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    with platform.store.transaction() as tx:
        created = tx.create_app("shop", owner.account.id, STACK)
        append_release(tx, created, slug_id=None, config={}, description="Initial", user=None)
    return created


def _deploy(platform: Platform, app: App, owner: NewUser, repo: Repo, files: dict[str, str]) -> str:
    sha = repo.commit(files)
    lines: list[str] = []
    release = deploy_push(
        platform,
        app.id,
        owner.account.id,
        [(ZERO, sha, "refs/heads/main")],
        repo.path,
        BuildOutput(lines.append),
    )
    assert release.slug_id is not None
    with platform.store.read() as tx:
        digest = tx.get_slug(release.slug_id).digest
    tree = platform.settings.data_dir / f"slug-{sha[:8]}"
    extract_image(platform.slugs.get(digest), tree)
    return (tree / "built-by").read_text().strip()


def test_deploys_use_installations_then_app_json_then_detection(
    platform: Platform, app: App, owner: NewUser, tmp_path: Path
) -> None:
    root = local_buildpacks_dir(platform.settings)
    _classic(root, "from-appjson")
    _classic(root, "installed")
    repo = Repo(tmp_path / "repo")
    manifest = json.dumps({"buildpacks": [{"url": f"{root}/from-appjson"}]})
    procfile = "web: python3 -m http.server $PORT\n"

    assert _deploy(platform, app, owner, repo, {"Procfile": procfile, "app.json": manifest}) == (
        "from-appjson"
    )
    replace_installations(platform, owner.account, "shop", [f"{root}/installed"])
    assert _deploy(platform, app, owner, repo, {"README": "2"}) == "installed"
