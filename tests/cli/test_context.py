"""Which app a command acts on: -a, then DOCKYARD_APP, then the git remote, like Heroku's CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import API_URL, FakeApi

Git = Callable[..., str]
NO_APP = " !    No app specified. Use -a APP or run this command inside an app's git repository.\n"


@pytest.fixture(autouse=True)
def _apps(fake: FakeApi) -> None:
    for name in ("shop", "blog", "wiki", "env-app"):
        fake.add_app(name)


def _app_used(dock: Dock, fake: FakeApi, *args: str) -> str:
    result = dock("config", *args)
    assert result.exit_code == 0, result.output
    return fake.requests[-1].path.split("/")[2]


def test_no_app_anywhere(dock: Dock) -> None:
    result = dock("config")
    assert result.exit_code == 1
    assert result.stderr == NO_APP


def test_no_app_in_a_repo_without_dockyard_remotes(dock: Dock, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "origin", "https://github.com/me/shop.git")
    git(repo, "remote", "add", "dockyard", "http://elsewhere:5000/shop.git")
    assert dock("config").stderr == NO_APP


def test_dockyard_remote(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    assert _app_used(dock, fake) == "shop"


def test_inferred_from_a_subdirectory(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    (repo / "src").mkdir()
    dock.cwd = repo / "src"
    assert _app_used(dock, fake) == "shop"


def test_heroku_remote_is_accepted(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "heroku", f"{API_URL}/blog.git")
    assert _app_used(dock, fake) == "blog"


def test_dockyard_remote_wins_over_heroku(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "heroku", f"{API_URL}/blog.git")
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    assert _app_used(dock, fake) == "shop"


def test_remote_option_picks_the_remote(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    git(repo, "remote", "add", "staging", f"{API_URL}/wiki.git")
    assert _app_used(dock, fake, "-r", "staging") == "wiki"


def test_remote_option_naming_a_missing_remote(dock: Dock, repo: Path) -> None:
    result = dock("config", "-r", "staging")
    assert result.exit_code == 1
    assert "Git remote staging does not exist" in result.stderr


def test_single_other_remote_on_the_api_host(
    dock: Dock, fake: FakeApi, repo: Path, git: Git
) -> None:
    git(repo, "remote", "add", "production", f"{API_URL}/wiki.git")
    assert _app_used(dock, fake) == "wiki"


def test_several_apps_in_other_remotes_is_ambiguous(dock: Dock, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "production", f"{API_URL}/wiki.git")
    git(repo, "remote", "add", "staging", f"{API_URL}/blog.git")
    result = dock("config")
    assert result.exit_code == 1
    assert "Multiple apps in git remotes (production, staging)" in result.stderr


def test_app_option_wins(
    dock: Dock, fake: FakeApi, repo: Path, git: Git, env: dict[str, str]
) -> None:
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    env["DOCKYARD_APP"] = "env-app"
    assert _app_used(dock, fake, "-a", "blog") == "blog"


def test_environment_wins_over_git(
    dock: Dock, fake: FakeApi, repo: Path, git: Git, env: dict[str, str]
) -> None:
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    env["DOCKYARD_APP"] = "env-app"
    assert _app_used(dock, fake) == "env-app"


def test_remote_urls_with_credentials_or_trailing_slash(
    dock: Dock, fake: FakeApi, repo: Path, git: Git
) -> None:
    git(repo, "remote", "add", "dockyard", "http://dev:key@localhost:5000/shop.git/")
    assert _app_used(dock, fake) == "shop"
