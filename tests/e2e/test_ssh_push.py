"""Deploying over SSH with a key registered through the CLI, end to end; helpers for other e2e tests
that push over SSH."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def register_key(dockyard: Dockyard, where: Path) -> Path:
    """A new ed25519 key in ``where``, added with ``dockyard keys:add`` to the logged-in account;
    its private key's path."""
    identity = where / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(identity)],
        check=True,
    )
    dockyard.cli("keys:add", str(identity) + ".pub")
    return identity


def ssh_env(dockyard: Dockyard, identity: Path) -> dict[str, str]:
    """The platform's environment for git and the CLI, plus what makes them use ``identity``
    against this platform's SSH server."""
    port = dockyard.env["DOCKYARD_GIT_SSH_PORT"]
    return {
        **dockyard.env,
        "DOCKYARD_GIT_SSH_URL": f"ssh://git@localhost:{port}",
        "GIT_SSH_COMMAND": f"ssh -i {identity} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null",
    }


def ssh_url(dockyard: Dockyard, app: str) -> str:
    return f"ssh://git@localhost:{dockyard.env['DOCKYARD_GIT_SSH_PORT']}/{app}.git"


def push_over_ssh(dockyard: Dockyard, identity: Path, repo: Path, app: str) -> str:
    """``git push`` of ``main`` to ``app`` over SSH; the push's output (fails the test on an error)."""
    push = subprocess.run(
        ["git", "push", ssh_url(dockyard, app), "main"],
        cwd=repo,
        env=ssh_env(dockyard, identity),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = push.stdout + push.stderr
    assert push.returncode == 0, f"{output}\n--- platform log ---\n{dockyard.platform_log()}"
    return output


def test_a_push_over_ssh_deploys_and_serves(
    dockyard: Dockyard, tmp_path_factory: pytest.TempPathFactory
) -> None:
    created = dockyard.cli("admin:create-user", "ssh-dev@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    dockyard.cli("login", "--email", "ssh-dev@example.com", "--api-key", key.group(1))
    identity = register_key(dockyard, tmp_path_factory.mktemp("ssh"))
    repo: Path = tmp_path_factory.mktemp("ssh-app")
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    (repo / "index.html").write_text("over ssh\n")
    (repo / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", "first", cwd=repo)
    original = dockyard.env
    dockyard.env = ssh_env(dockyard, identity)
    try:
        dockyard.cli("apps:create", "ssh-app", "--ssh", cwd=repo)
        remote = dockyard.git("remote", "get-url", "dockyard", cwd=repo).stdout.strip()
        assert remote == ssh_url(dockyard, "ssh-app")
        push = dockyard.git("push", "dockyard", "main", cwd=repo)
    finally:
        dockyard.env = original
    assert "Released v2" in push.stdout + push.stderr
    assert dockyard.wait_for("ssh-app", "over ssh").status_code == 200
