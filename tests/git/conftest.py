"""A real git server for the tests: the API app with the smart-HTTP routes served by uvicorn on an
ephemeral loopback port, a Platform on a temporary data directory, a user and an app with release
v1."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import uvicorn

from dockyard._util import proc
from dockyard._util.secretfile import ensure_secret_file
from dockyard.api.app import create_app
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform
from dockyard.control.releases import append_release
from dockyard.git.http import git_routes
from dockyard.store.records import App


@dataclass(frozen=True)
class GitServer:
    base_url: str

    def remote(self, app: str, key: str, user: str = "someone") -> str:
        host = self.base_url.removeprefix("http://")
        return f"http://{user}:{key}@{host}/{app}.git"


@contextmanager
def serve(platform: Platform) -> Iterator[GitServer]:
    """The API of ``platform`` with its git routes (what ``dockyard.serve api`` runs) on an
    ephemeral loopback port, for the duration of the block. ``platform.settings`` name that port,
    so the pre-receive hooks of pushes (over HTTP or SSH) hand their builds to this API."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = platform.settings
    platform.settings = replace(settings, api=replace(settings.api, host="127.0.0.1", port=port))
    token = ensure_secret_file(platform.settings.internal_token_file)
    app = create_app(platform, internal_token=token, extra_routes=git_routes(platform))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # start-up wait only; no test logic depends on timing
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test git server did not start")
        time.sleep(0.01)
    try:
        yield GitServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def git_server(platform: Platform) -> Iterator[GitServer]:
    with serve(platform) as server:
        yield server


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


@pytest.fixture
def stranger(platform: Platform) -> NewUser:
    return create_user(platform, "stranger@example.com")


def make_app(platform: Platform, owner: NewUser, name: str = "shipit") -> App:
    """An app created directly in the store, with release v1 and no slug."""
    with platform.store.transaction() as tx:
        created = tx.create_app(name, owner.account.id, STACK)
        append_release(
            tx, created, slug_id=None, config={}, description="Initial release", user=owner.account
        )
    return created


@pytest.fixture
def app(platform: Platform, owner: NewUser) -> App:
    return make_app(platform, owner)


def git_env(home: Path) -> dict[str, str]:
    """An environment that shields git from the machine's configuration and never prompts."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "LANG": "C.UTF-8",
    }


@dataclass
class WorkTree:
    """A local repository to commit in and push from."""

    path: Path
    env: dict[str, str]

    def git(self, *args: str, check: bool = True) -> proc.Completed:
        result = proc.run(["git", *args], cwd=self.path, env=self.env, check=False, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} exited {result.returncode}:\n{result.text}\n"
                f"{result.stderr.decode('utf-8', 'replace')}"
            )
        return result

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").text.strip()

    def push(self, remote: str, refspec: str = "main") -> tuple[int, str]:
        """Exit code and everything git printed (its stderr carries the ``remote:`` lines)."""
        result = self.git("push", remote, refspec, check=False)
        text = result.text + result.stderr.decode("utf-8", "replace")
        return result.returncode, text


@pytest.fixture
def worktree(tmp_path: Path) -> WorkTree:
    path = tmp_path / "work"
    path.mkdir()
    tree = WorkTree(path, git_env(tmp_path))
    tree.git("init", "--quiet", "--initial-branch=main")
    return tree
