"""CLI test fixtures: a fake Platform API, a home directory, ``dock(...)`` to run the command."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dockyard._util import proc
from dockyard.cli.main import cli
from tests.cli.fakeapi import API_KEY, API_URL, FakeApi, make_context


@dataclass
class Dock:
    """Runs ``dockyard ARGS`` in-process against the fake API, in ``cwd``, with ``env``."""

    fake: FakeApi
    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, input: str | None = None, **overrides: Any) -> Result:
        context = make_context(self.fake, env=self.env, cwd=self.cwd, **overrides)
        return CliRunner().invoke(cli, list(args), obj=context, input=input)


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def env(home: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
        "DOCKYARD_API_URL": API_URL,
        "DOCKYARD_API_KEY": API_KEY,
    }


@pytest.fixture
def dock(fake: FakeApi, env: dict[str, str], workdir: Path) -> Dock:
    return Dock(fake, env, workdir)


@pytest.fixture
def git(env: dict[str, str]) -> Callable[..., str]:
    """``git(repo, *args)``: run the real git in ``repo`` and return its stdout."""

    def run(repo: Path, *args: str) -> str:
        return proc.run(["git", *args], cwd=repo, env=env).text

    return run


@pytest.fixture
def repo(workdir: Path, git: Callable[..., str]) -> Path:
    """The working directory, made a git repository."""
    git(workdir, "init", "-q")
    return workdir
