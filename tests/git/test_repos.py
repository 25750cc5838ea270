"""GitRepos: one bare repository per app with the deploying pre-receive hook."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dockyard._util import proc
from dockyard.errors import InvalidError
from dockyard.git.repos import GitRepos, install_hook, set_head

APP_ID = "0b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10"


def _config(repo: Path, key: str) -> str:
    return proc.run(["git", "config", "--file", repo / "config", key]).text.strip()


def test_ensure_creates_a_bare_repository_named_by_app_id(tmp_path: Path) -> None:
    repos = GitRepos(tmp_path / "repos")

    path = repos.ensure(APP_ID)

    assert path == tmp_path / "repos" / f"{APP_ID}.git"
    assert _config(path, "core.bare") == "true"
    assert proc.run(["git", "symbolic-ref", "HEAD"], cwd=path).text.strip() == "refs/heads/main"
    assert _config(path, "receive.denyDeletes") == "true"
    assert _config(path, "receive.denyNonFastForwards") == "false"
    assert _config(path, "core.hooksPath") == "hooks"
    assert repos.exists(APP_ID)
    assert [p.name for p in (tmp_path / "repos").iterdir()] == [f"{APP_ID}.git"]


def test_the_hook_runs_the_installing_interpreter(tmp_path: Path) -> None:
    hook = GitRepos(tmp_path).ensure(APP_ID) / "hooks" / "pre-receive"

    assert os.access(hook, os.X_OK)
    assert (
        hook.read_text() == f"#!/bin/sh\nexec {sys.executable} -m dockyard.git.hooks pre-receive\n"
    )
    assert sorted(p.name for p in hook.parent.iterdir()) == ["pre-receive"]


def test_ensure_reinstalls_a_hook_written_for_another_interpreter(tmp_path: Path) -> None:
    repos = GitRepos(tmp_path)
    path = repos.ensure(APP_ID)
    install_hook(path, "/opt/old python/bin/python3")
    assert "'/opt/old python/bin/python3'" in (path / "hooks" / "pre-receive").read_text()

    repos.ensure(APP_ID)

    assert sys.executable in (path / "hooks" / "pre-receive").read_text()


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden"])
def test_app_ids_cannot_name_other_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidError):
        GitRepos(tmp_path).ensure(bad)


def test_delete_removes_the_repository(tmp_path: Path) -> None:
    repos = GitRepos(tmp_path)
    repos.ensure(APP_ID)

    repos.delete(APP_ID)
    repos.delete(APP_ID)  # deleting twice is harmless

    assert not repos.exists(APP_ID)
    assert list(tmp_path.iterdir()) == []


def test_set_head_follows_the_deployed_branch(tmp_path: Path) -> None:
    path = GitRepos(tmp_path).ensure(APP_ID)

    set_head(path, "refs/heads/master")

    assert proc.run(["git", "symbolic-ref", "HEAD"], cwd=path).text.strip() == "refs/heads/master"
    with pytest.raises(InvalidError):
        set_head(path, "refs/heads/dev")
