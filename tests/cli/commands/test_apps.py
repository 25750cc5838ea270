"""apps, apps:create, apps:info, apps:rename, apps:destroy, git:remote — with real git."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import Dock
from tests.cli.fakeapi import API_URL, FakeApi

Git = Callable[..., str]


def _remotes(git: Git, repo: Path) -> str:
    return git(repo, "remote", "-v")


def test_apps_lists_own_then_collaborated_apps(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("zeta")
    fake.add_app("alpha")
    fake.add_app("shared", owner="boss@example.com")
    result = dock("apps")
    assert result.exit_code == 0
    assert result.stdout == (
        "=== dev@example.com Apps\nalpha\nzeta\n\n=== Collaborated Apps\nshared  boss@example.com\n"
    )


def test_apps_json_prints_the_api_json_sorted(dock: Dock, fake: FakeApi) -> None:
    app = fake.add_app("shop")
    result = dock("apps", "--json")
    assert json.loads(result.stdout) == [app]
    assert result.stdout == json.dumps([app], sort_keys=True, indent=2) + "\n"


def test_apps_follows_pagination(dock: Dock, fake: FakeApi) -> None:
    for n in range(5):
        fake.add_app(f"app-{n}")
    fake.page_size = 2
    result = dock("apps")
    assert result.stdout.splitlines()[1:] == [f"app-{n}" for n in range(5)]
    ranges = [r.headers.get("range") for r in fake.requests if r.path == "/apps"]
    assert ranges == [None, "id ]2..; max=2", "id ]4..; max=2"]


def test_create_outside_git_prints_urls(dock: Dock, fake: FakeApi) -> None:
    result = dock("apps:create", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("POST", "/apps", {"name": "shop"})]
    assert result.stderr == "Creating shop... done\n"
    assert result.stdout == f"http://shop.dockyard.localhost:8080/ | {API_URL}/shop.git\n"


def test_create_without_name_lets_the_api_choose(dock: Dock, fake: FakeApi) -> None:
    result = dock("create")
    assert fake.writes() == [("POST", "/apps", {})]
    assert result.stderr == "Creating app... done, sleepy-meadow-1234\n"


def test_create_in_a_repo_adds_the_dockyard_remote(dock: Dock, repo: Path, git: Git) -> None:
    result = dock("apps:create", "shop")
    assert result.exit_code == 0, result.output
    assert git(repo, "remote", "get-url", "dockyard").strip() == f"{API_URL}/shop.git"
    assert "Git remote dockyard added" in result.stderr


def test_create_with_a_named_remote(dock: Dock, repo: Path, git: Git) -> None:
    assert dock("apps:create", "shop", "--remote", "staging").exit_code == 0
    assert git(repo, "remote", "get-url", "staging").strip() == f"{API_URL}/shop.git"


def test_create_with_no_remote_leaves_git_alone(dock: Dock, repo: Path, git: Git) -> None:
    assert dock("apps:create", "shop", "--no-remote").exit_code == 0
    assert _remotes(git, repo) == ""


def test_create_keeps_an_existing_remote_and_warns(dock: Dock, repo: Path, git: Git) -> None:
    git(repo, "remote", "add", "dockyard", f"{API_URL}/old.git")
    result = dock("apps:create", "shop")
    assert result.exit_code == 0
    assert git(repo, "remote", "get-url", "dockyard").strip() == f"{API_URL}/old.git"
    assert "already points at" in result.stderr


def test_create_failure_is_reported(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("apps:create", "shop")
    assert result.exit_code == 1
    assert result.stderr == "Creating shop... !\n !    Name is already taken\n"


def test_info_shows_the_app(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.add_process("shop", "web", "python app.py", quantity=2)
    result = dock("apps:info", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "=== shop\n"
        "Dynos:       web: 2\n"
        f"Git URL:     {API_URL}/shop.git\n"
        "Maintenance: off\n"
        "Owner:       dev@example.com\n"
        "Released At: 2026/01/01 11:58:00 +0000\n"
        "Stack:       heroku-24\n"
        "Web URL:     http://shop.dockyard.localhost:8080/\n"
    )


def test_info_json(dock: Dock, fake: FakeApi) -> None:
    app = fake.add_app("shop")
    result = dock("info", "-a", "shop", "--json")
    assert json.loads(result.stdout) == app
    assert fake.sent() == [("GET", "/apps/shop", None)]


def test_rename_updates_remotes_pointing_at_the_app(
    dock: Dock, fake: FakeApi, repo: Path, git: Git
) -> None:
    fake.add_app("shop")
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    git(repo, "remote", "add", "other", f"{API_URL}/blog.git")
    result = dock("apps:rename", "store")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("PATCH", "/apps/shop", {"name": "store"})]
    assert git(repo, "remote", "get-url", "dockyard").strip() == f"{API_URL}/store.git"
    assert git(repo, "remote", "get-url", "other").strip() == f"{API_URL}/blog.git"
    assert "Git remote dockyard updated" in result.stderr


def test_destroy_with_matching_confirm(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    fake.add_app("shop")
    git(repo, "remote", "add", "dockyard", f"{API_URL}/shop.git")
    git(repo, "remote", "add", "heroku", f"{API_URL}/shop.git")
    git(repo, "remote", "add", "origin", "https://example.com/code.git")
    result = dock("apps:destroy", "--confirm", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("DELETE", "/apps/shop", None)]
    assert git(repo, "remote").split() == ["origin"]
    assert "Destroying shop (including all add-ons)... done" in result.stderr


def test_destroy_with_mismatched_confirm_aborts(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("apps:destroy", "-a", "shop", "--confirm", "shp")
    assert result.exit_code == 1
    assert result.stderr == " !    Confirmation shp did not match shop. Aborted.\n"
    assert fake.writes() == []


def test_destroy_prompts_and_goes_on_when_the_name_is_typed(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("apps:destroy", "shop", input="shop\n")
    assert result.exit_code == 0, result.output
    assert "To proceed, type shop or re-run this command with --confirm shop" in result.stderr
    assert fake.writes() == [("DELETE", "/apps/shop", None)]


def test_destroy_prompt_mismatch_aborts(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("apps:destroy", "-a", "shop", input="nope\n")
    assert result.exit_code == 1
    assert result.stderr.endswith(" !    Confirmation nope did not match shop. Aborted.\n")
    assert fake.writes() == []


def test_destroy_without_input_aborts(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("apps:destroy", "-a", "shop", input="")
    assert result.exit_code == 1
    assert fake.writes() == []


def test_git_remote_adds_then_updates(dock: Dock, fake: FakeApi, repo: Path, git: Git) -> None:
    fake.add_app("shop")
    fake.add_app("blog")
    result = dock("git:remote", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"set git remote dockyard to {API_URL}/shop.git\n"
    assert dock("git:remote", "-a", "blog", "-r", "dockyard").exit_code == 0
    assert git(repo, "remote", "get-url", "dockyard").strip() == f"{API_URL}/blog.git"


def test_git_remote_outside_a_repo(dock: Dock, fake: FakeApi) -> None:
    fake.add_app("shop")
    result = dock("git:remote", "-a", "shop")
    assert result.exit_code == 1
    assert "Not inside a git repository" in result.stderr
