"""``apps:create --ssh`` and ``git:remote --ssh``: git remotes over SSH, with real git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi

Git = Callable[..., str]


def test_create_with_ssh_adds_the_ssh_remote_on_the_api_host(
    dock: Dock, repo: Path, git: Git
) -> None:
    result = dock("apps:create", "shop", "--ssh")

    assert result.exit_code == 0, result.output
    url = "ssh://git@localhost:2222/shop.git"
    assert git(repo, "remote", "get-url", "dockyard").strip() == url
    assert result.stdout == f"http://shop.dockyard.localhost:8080/ | {url}\n"


def test_git_remote_with_ssh_follows_dockyard_git_ssh_url(
    dock: Dock, fake: FakeApi, repo: Path, git: Git
) -> None:
    fake.add_app("shop")
    dock.env["DOCKYARD_GIT_SSH_URL"] = "ssh://git@git.example.com:2022/"

    result = dock("git:remote", "-a", "shop", "--ssh")

    assert result.exit_code == 0, result.output
    url = "ssh://git@git.example.com:2022/shop.git"
    assert git(repo, "remote", "get-url", "dockyard").strip() == url
    assert result.stdout == f"set git remote dockyard to {url}\n"


def test_git_remote_with_ssh_brackets_an_ipv6_api_host(
    dock: Dock, fake: FakeApi, repo: Path, git: Git
) -> None:
    fake.api_url = "http://[::1]:5000"
    fake.add_app("shop")
    dock.env["DOCKYARD_API_URL"] = "http://[::1]:5000"

    assert dock("git:remote", "-a", "shop", "--ssh").exit_code == 0
    assert git(repo, "remote", "get-url", "dockyard").strip() == "ssh://git@[::1]:2222/shop.git"


@pytest.mark.parametrize(
    "value", ["http://git.example.com:2222", "ssh://", "ssh://git@host:port", "ssh://h:22/x"]
)
def test_a_malformed_dockyard_git_ssh_url_is_explained(
    dock: Dock, fake: FakeApi, repo: Path, git: Git, value: str
) -> None:
    fake.add_app("shop")
    dock.env["DOCKYARD_GIT_SSH_URL"] = value

    result = dock("git:remote", "-a", "shop", "--ssh")

    assert result.exit_code == 1
    assert "DOCKYARD_GIT_SSH_URL" in result.stderr
    assert "ssh://git@git.example.com:2222" in result.stderr
    assert git(repo, "remote") == ""
