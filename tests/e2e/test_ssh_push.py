"""Deploying over SSH with a key registered through the CLI, end to end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_push_over_ssh_deploys_and_serves(
    dockyard: Dockyard, tmp_path_factory: pytest.TempPathFactory
) -> None:
    created = dockyard.cli("admin:create-user", "ssh-dev@example.com")
    key = re.search(r"API key \(shown once\): (\S+)", created.stdout)
    assert key, created.stdout
    dockyard.cli("login", "--email", "ssh-dev@example.com", "--api-key", key.group(1))
    ssh_dir = tmp_path_factory.mktemp("ssh")
    identity = ssh_dir / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", str(identity)],
        check=True,
    )
    dockyard.cli("keys:add", str(identity) + ".pub")
    port = dockyard.env["DOCKYARD_GIT_SSH_PORT"]
    repo: Path = tmp_path_factory.mktemp("ssh-app")
    dockyard.git("init", "-q", "-b", "main", cwd=repo)
    (repo / "index.html").write_text("over ssh\n")
    (repo / "Procfile").write_text("web: python3 -m http.server $PORT\n")
    dockyard.git("add", "-A", cwd=repo)
    dockyard.git("commit", "-q", "-m", "first", cwd=repo)
    ssh_env = {
        **dockyard.env,
        "DOCKYARD_GIT_SSH_URL": f"ssh://git@localhost:{port}",
        "GIT_SSH_COMMAND": f"ssh -i {identity} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null",
    }
    original = dockyard.env
    dockyard.env = ssh_env
    try:
        dockyard.cli("apps:create", "ssh-app", "--ssh", cwd=repo)
        remote = dockyard.git("remote", "get-url", "dockyard", cwd=repo).stdout.strip()
        assert remote == f"ssh://git@localhost:{port}/ssh-app.git"
        push = dockyard.git("push", "dockyard", "main", cwd=repo)
    finally:
        dockyard.env = original
    assert "Released v2" in push.stdout + push.stderr
    assert dockyard.wait_for("ssh-app", "over ssh").status_code == 200
