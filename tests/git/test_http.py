"""git push / clone over smart HTTP against the real git binaries, end to end through the
pre-receive hook, the build pipeline, the slug store and the release."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from dockyard._util import proc
from dockyard.audit.writer import AuditWriter
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import Platform
from dockyard.git.http import pkt_line
from dockyard.settings import Settings
from dockyard.store.records import App
from tests.conftest import make_settings
from tests.git.conftest import GitServer, WorkTree, make_app, serve

PROCFILE = "web: python3 -m http.server $PORT\nworker: python3 worker.py\n"


def _releases(platform: Platform, app: App) -> list[tuple[int, str | None, str]]:
    with platform.store.read() as tx:
        return [(r.version, r.slug_id, r.description) for r in tx.list_releases(app.id)]


def test_push_of_a_procfile_app_builds_a_slug_and_releases_it(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    sha = worktree.commit({"Procfile": PROCFILE, "worker.py": "print('hi')\n"})
    code, output = worktree.push(git_server.remote(app.name, owner.api_key))

    assert code == 0, output
    assert "remote: -----> Building on the Dockyard heroku-24 stack" in output
    assert "remote: -----> Procfile app detected" in output
    assert "remote:        Procfile declares types -> web, worker" in output
    assert "remote: -----> Launching..." in output
    assert "Released v2" in output
    assert f"{platform.settings.app_url(app.name)} deployed to Dockyard" in output
    versions = _releases(platform, app)
    assert [v for v, _, _ in versions] == [1, 2]
    _, slug_id, description = versions[-1]
    assert description == f"Deploy {sha[:8]}"
    assert slug_id is not None
    with platform.store.read() as tx:
        slug = tx.get_slug(slug_id)
        builds = tx.list_builds(app.id)
        formation = {f.type: f.quantity for f in tx.list_formation(app.id)}
    assert slug.commit == sha
    assert dict(slug.process_types) == {
        "web": "python3 -m http.server $PORT",
        "worker": "python3 worker.py",
    }
    assert platform.slugs.exists(slug.digest)
    assert [(b.status, b.source_version, b.slug_id) for b in builds] == [
        ("succeeded", sha, slug_id)
    ]
    assert "Released v2" in builds[0].output
    assert formation == {"web": 1, "worker": 0}
    logged = [line.message for line in platform.logs.tail(app.id, 100)]
    assert f"Deploy {sha[:8]} by owner@example.com" in logged
    assert "Release v2 created by owner@example.com" in logged


def test_a_broken_procfile_fails_the_push_and_keeps_the_current_release(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    worktree.commit({"Procfile": "web: python3 -m http.server $PORT\nworker:\n"})
    code, output = worktree.push(git_server.remote(app.name, owner.api_key))

    assert code != 0
    assert 'remote:  !     Procfile line 2: "worker" has no command' in output
    assert "remote:  !     Push failed" in output
    assert [v for v, _, _ in _releases(platform, app)] == [1]
    with platform.store.read() as tx:
        builds = tx.list_builds(app.id)
    assert [b.status for b in builds] == ["failed"]
    assert "Procfile line 2" in builds[0].output


def test_a_repository_without_a_procfile_is_rejected_with_advice(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    worktree.commit({"README.md": "hello\n"})
    code, output = worktree.push(git_server.remote(app.name, owner.api_key))

    assert code != 0
    assert "No Procfile found" in output
    assert "web: python3 -m http.server $PORT" in output
    assert [v for v, _, _ in _releases(platform, app)] == [1]


def test_a_failed_push_does_not_replace_an_earlier_deploy(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    remote = git_server.remote(app.name, owner.api_key)
    worktree.commit({"Procfile": PROCFILE})
    assert worktree.push(remote)[0] == 0
    before = _releases(platform, app)
    worktree.commit({"Procfile": "web\n"})
    code, output = worktree.push(remote)

    assert code != 0
    assert "Procfile line 1" in output
    assert _releases(platform, app) == before


def test_a_push_to_another_branch_is_refused_with_the_command_to_use(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    worktree.commit({"Procfile": PROCFILE})
    worktree.git("branch", "dev")
    code, output = worktree.push(git_server.remote(app.name, owner.api_key), "dev")

    assert code != 0
    assert "Pushed to refs/heads/dev: only main or master deploy" in output
    assert "git push dockyard dev:main" in output
    assert [v for v, _, _ in _releases(platform, app)] == [1]


def test_master_deploys_too(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    worktree.commit({"Procfile": PROCFILE})
    code, output = worktree.push(git_server.remote(app.name, owner.api_key), "main:master")

    assert code == 0, output
    assert [v for v, _, _ in _releases(platform, app)] == [1, 2]


def test_a_wrong_api_key_fails_authentication(
    git_server: GitServer, app: App, worktree: WorkTree
) -> None:
    worktree.commit({"Procfile": PROCFILE})
    code, output = worktree.push(git_server.remote(app.name, "dky_not-a-key"))

    assert code != 0
    assert "Authentication failed" in output


def test_someone_elses_app_is_not_found(
    platform: Platform, git_server: GitServer, app: App, stranger: NewUser, worktree: WorkTree
) -> None:
    worktree.commit({"Procfile": PROCFILE})
    code, output = worktree.push(git_server.remote(app.name, stranger.api_key))

    assert code != 0
    assert "not found" in output
    assert [v for v, _, _ in _releases(platform, app)] == [1]


def test_a_collaborator_can_deploy(
    platform: Platform, git_server: GitServer, app: App, stranger: NewUser, worktree: WorkTree
) -> None:
    with platform.store.transaction() as tx:
        tx.add_collaborator(app.id, stranger.account.id)
    worktree.commit({"Procfile": PROCFILE})
    code, output = worktree.push(git_server.remote(app.name, stranger.api_key))

    assert code == 0, output
    assert [v for v, _, _ in _releases(platform, app)] == [1, 2]


def test_clone_after_push_gets_the_deployed_commit(
    git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree, tmp_path: Path
) -> None:
    remote = git_server.remote(app.name, owner.api_key)
    sha = worktree.commit({"Procfile": PROCFILE})
    assert worktree.push(remote)[0] == 0

    worktree.git("clone", "--quiet", remote, str(tmp_path / "clone"))
    clone = WorkTree(tmp_path / "clone", worktree.env)
    assert clone.git("rev-parse", "HEAD").text.strip() == sha
    assert (tmp_path / "clone" / "Procfile").read_text() == PROCFILE


def test_info_refs_without_credentials_asks_for_basic_auth(git_server: GitServer, app: App) -> None:
    response = httpx.get(
        f"{git_server.base_url}/{app.name}.git/info/refs",
        params={"service": "git-receive-pack"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="Dockyard"'


def test_info_refs_advertises_the_service(git_server: GitServer, app: App, owner: NewUser) -> None:
    response = httpx.get(
        f"{git_server.base_url}/{app.name}.git/info/refs",
        params={"service": "git-upload-pack"},
        auth=("", owner.api_key),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    assert response.headers["cache-control"].startswith("no-cache")
    assert response.content.startswith(b"001e# service=git-upload-pack\n0000")


def test_dumb_http_is_refused(git_server: GitServer, app: App, owner: NewUser) -> None:
    response = httpx.get(
        f"{git_server.base_url}/{app.name}.git/info/refs", auth=("", owner.api_key)
    )
    assert response.status_code == 403


def test_a_gzipped_upload_pack_request_is_inflated(
    git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    sha = worktree.commit({"Procfile": PROCFILE})
    assert worktree.push(git_server.remote(app.name, owner.api_key))[0] == 0
    request = pkt_line(f"want {sha}\n") + b"0000" + pkt_line("done\n")

    response = httpx.post(
        f"{git_server.base_url}/{app.name}.git/git-upload-pack",
        content=gzip.compress(request),
        headers={
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
        auth=("", owner.api_key),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-git-upload-pack-result"
    assert response.content.startswith(b"0008NAK\n")
    assert b"PACK" in response.content


def test_a_push_over_the_size_limit_is_refused(
    tmp_path: Path, worktree: WorkTree, start_audit_writer: Callable[[Settings], AuditWriter]
) -> None:
    settings = make_settings(tmp_path / "small", DOCKYARD_BUILD_MAX_REPO_BYTES="2000")
    start_audit_writer(settings)
    small = Platform.open(settings)
    try:
        user = create_user(small, "big@example.com")
        app = make_app(small, user)
        worktree.commit({"Procfile": PROCFILE, "data.bin": os.urandom(8000).hex()})
        with serve(small) as server:
            code, output = worktree.push(server.remote(app.name, user.api_key))
            response = httpx.post(
                f"{server.base_url}/{app.name}.git/git-receive-pack",
                content=b"0" * 2001,
                headers={"Content-Type": "application/x-git-receive-pack-request"},
                auth=("", user.api_key),
            )
        assert code != 0
        assert "413" in output
        assert response.status_code == 413
        assert [v for v, _, _ in _releases(small, app)] == [1]
    finally:
        small.close()


def test_hook_output_reaches_the_pusher_while_the_push_is_still_running(
    platform: Platform, git_server: GitServer, app: App, owner: NewUser, worktree: WorkTree
) -> None:
    """A post-receive hook prints a line, then waits until the pusher has seen it: only output that
    is streamed (not buffered until git exits) lets it finish in time."""
    repo = platform.settings.repos_dir / f"{app.id}.git"
    signal = worktree.path.parent / "seen"
    worktree.commit({"Procfile": PROCFILE})
    remote = git_server.remote(app.name, owner.api_key)
    assert worktree.push(remote)[0] == 0
    hook = repo / "hooks" / "post-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "echo waiting-for-the-pusher\n"
        f"for i in $(seq 300); do [ -f '{signal}' ] && echo seen-live && exit 0; sleep 0.1; done\n"
        "echo never-seen\n"
    )
    hook.chmod(0o755)
    worktree.commit({"README": "again\n"})
    lines: list[str] = []

    def on_line(raw: bytes) -> None:
        line = raw.decode("utf-8", "replace")
        lines.append(line)
        if "waiting-for-the-pusher" in line:
            signal.touch()

    code = proc.stream(
        ["git", "push", "--progress", remote, "main"],
        on_line=on_line,
        cwd=worktree.path,
        env=worktree.env,
        timeout=60,
    )

    assert code == 0, lines
    assert any("seen-live" in line for line in lines), lines
