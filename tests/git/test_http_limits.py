"""Limits of git over HTTPS: the push rate limit, the pack size limit, and that no URL reaches
another app's repository. Real git, real uvicorn; no build runs in this file."""

from __future__ import annotations

import base64
import gzip
import http.client
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dockyard._util import proc
from dockyard._util.clock import FakeClock
from dockyard.audit.writer import AuditWriter
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import Platform
from dockyard.git.repos import GitRepos
from dockyard.settings import Settings
from dockyard.store.records import App
from tests.conftest import make_settings
from tests.git.conftest import GitServer, WorkTree, make_app, serve

PROCFILE = "web: python3 -m http.server $PORT\n"
RECEIVE = {"Content-Type": "application/x-git-receive-pack-request"}


def _seed(platform: Platform, app: App, tree: WorkTree) -> str:
    """The work tree's ``main`` in the app's repository, fetched in (no hook, so no build)."""
    sha = tree.commit({"Procfile": PROCFILE})
    repo = GitRepos(platform.settings.repos_dir).ensure(app.id)
    proc.run(["git", "fetch", "--quiet", str(tree.path), "main:main"], cwd=repo, env=tree.env)
    return sha


def _refs(platform: Platform, app: App) -> str:
    repo = GitRepos(platform.settings.repos_dir).path(app.id)
    return proc.run(["git", "for-each-ref"], cwd=repo).text


# -- push rate limit ------------------------------------------------------------------------------------


@pytest.fixture
def limited(
    tmp_path: Path, clock: FakeClock, start_audit_writer: Callable[[Settings], AuditWriter]
) -> Iterator[Platform]:
    """A platform allowing 2 pushes an hour per account and app, on a fake clock."""
    settings = make_settings(tmp_path / "limited", DOCKYARD_GIT_PUSH_RATE_PER_HOUR="2")
    start_audit_writer(settings)
    platform = Platform.open(settings, clock=clock)
    yield platform
    platform.close()


def _empty_push(server: GitServer, app: str, key: str) -> httpx.Response:
    """A receive-pack request with no commands: git accepts it and changes nothing."""
    return httpx.post(
        f"{server.base_url}/{app}.git/git-receive-pack",
        content=b"0000",
        headers=RECEIVE,
        auth=("", key),
    )


def test_pushes_beyond_the_hourly_allowance_get_429_with_retry_after(limited: Platform) -> None:
    user = create_user(limited, "dev@example.com")
    app = make_app(limited, user)
    with serve(limited) as server:
        allowed = [_empty_push(server, app.name, user.api_key).status_code for _ in range(2)]
        refused = _empty_push(server, app.name, user.api_key)

    assert allowed == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1800"
    assert refused.text == (
        f"Too many pushes to {app.name}: the limit is 2 an hour per app and account. "
        "Try again in 1800 s.\n"
    )


def test_git_shows_the_rate_limit_message_and_fetches_still_work(
    limited: Platform, worktree: WorkTree, tmp_path: Path
) -> None:
    user = create_user(limited, "dev@example.com")
    app = make_app(limited, user)
    _seed(limited, app, worktree)
    with serve(limited) as server:
        for _ in range(2):
            assert _empty_push(server, app.name, user.api_key).status_code == 200
        remote = server.remote(app.name, user.api_key)
        worktree.commit({"README": "more\n"})
        code, output = worktree.push(remote)
        fetch = worktree.git("ls-remote", remote, check=False)

    assert code != 0
    assert f"remote: Too many pushes to {app.name}" in output
    assert "429" in output
    assert fetch.returncode == 0


def test_the_allowance_is_per_account_and_app_and_refills_with_time(
    limited: Platform, clock: FakeClock
) -> None:
    owner = create_user(limited, "dev@example.com")
    other = create_user(limited, "other@example.com")
    first = make_app(limited, owner, "first")
    second = make_app(limited, owner, "second")
    with limited.store.transaction() as tx:
        tx.add_collaborator(first.id, other.account.id)
    with serve(limited) as server:
        for _ in range(2):
            _empty_push(server, first.name, owner.api_key)
        exhausted = _empty_push(server, first.name, owner.api_key).status_code
        other_app = _empty_push(server, second.name, owner.api_key).status_code
        other_account = _empty_push(server, first.name, other.api_key).status_code
        clock.advance(1800)
        refilled = _empty_push(server, first.name, owner.api_key).status_code
        again = _empty_push(server, first.name, owner.api_key).status_code

    assert exhausted == 429
    assert (other_app, other_account) == (200, 200)
    assert (refilled, again) == (200, 429)


# -- size limit ------------------------------------------------------------------------------------------


@pytest.fixture
def small(
    tmp_path: Path, start_audit_writer: Callable[[Settings], AuditWriter]
) -> tuple[Platform, NewUser, App]:
    settings = make_settings(tmp_path / "small", DOCKYARD_BUILD_MAX_REPO_BYTES="2000")
    start_audit_writer(settings)
    platform = Platform.open(settings)
    user = create_user(platform, "big@example.com")
    return platform, user, make_app(platform, user)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"0" * 2001, {}),
        (gzip.compress(b"0" * 100_000), {"Content-Encoding": "gzip"}),
    ],
    ids=["plain", "gzip-bomb"],
)
def test_a_body_over_the_limit_is_413_whether_declared_streamed_or_inflated(
    small: tuple[Platform, NewUser, App], body: bytes, headers: dict[str, str]
) -> None:
    platform, user, app = small
    try:
        with serve(platform) as server:
            declared = httpx.post(
                f"{server.base_url}/{app.name}.git/git-receive-pack",
                content=body,
                headers=RECEIVE | headers,
                auth=("", user.api_key),
            )
            streamed = httpx.post(
                f"{server.base_url}/{app.name}.git/git-receive-pack",
                content=iter([body[:1000], body[1000:]]),  # chunked: no Content-Length
                headers=RECEIVE | headers,
                auth=("", user.api_key),
            )
        assert declared.status_code == 413
        assert streamed.status_code == 413
        assert "larger than the limit of 2000 bytes" in streamed.text
    finally:
        platform.close()


def test_a_gzipped_body_under_the_limit_is_accepted(small: tuple[Platform, NewUser, App]) -> None:
    platform, user, app = small
    try:
        with serve(platform) as server:
            response = httpx.post(
                f"{server.base_url}/{app.name}.git/git-receive-pack",
                content=gzip.compress(b"0000"),
                headers=RECEIVE | {"Content-Encoding": "gzip"},
                auth=("", user.api_key),
            )
        assert response.status_code == 200
    finally:
        platform.close()


def test_a_push_over_the_limit_fails_and_changes_nothing(
    small: tuple[Platform, NewUser, App], worktree: WorkTree
) -> None:
    platform, user, app = small
    try:
        worktree.commit({"Procfile": PROCFILE, "data.bin": os.urandom(8000).hex()})
        with serve(platform) as server:
            code, output = worktree.push(server.remote(app.name, user.api_key))
        assert code != 0
        assert "413" in output
        assert _refs(platform, app) == ""
        with platform.store.read() as tx:
            assert tx.list_builds(app.id) == []
    finally:
        platform.close()


# -- isolation between apps -------------------------------------------------------------------------------


@pytest.fixture
def theirs(platform: Platform, stranger: NewUser, worktree: WorkTree) -> App:
    """Someone else's app, with a commit in its repository."""
    other = make_app(platform, stranger, "theirs")
    _seed(platform, other, worktree)
    return other


def _raw_get(server: GitServer, path: str, key: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..`` or ``%2F``)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        token = base64.b64encode(f"x:{key}".encode()).decode()
        conn.request("GET", path, headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


TRICKY_PATHS = (
    "/../theirs.git/info/refs",
    "/shipit.git/../theirs.git/info/refs",
    "/..%2Ftheirs.git/info/refs",
    "/shipit.git%2F..%2Ftheirs.git/info/refs",
    "/%2e%2e/theirs.git/info/refs",
    "/theirs.git/info/refs",
    "/THEIRS.git/info/refs",
    "/shipit%2F..%2Ftheirs.git/info/refs",
)


def test_no_url_reaches_another_apps_repository(
    git_server: GitServer, app: App, owner: NewUser, theirs: App
) -> None:
    """Each path, for both services, sent byte for byte: "not found", never the other refs."""
    answers = {
        (path, service): _raw_get(git_server, f"{path}?service={service}", owner.api_key)
        for path in TRICKY_PATHS
        for service in ("git-upload-pack", "git-receive-pack")
    }

    leaks = {k: v for k, v in answers.items() if v[0] not in (400, 404) or b"refs/heads" in v[1]}
    assert leaks == {}


def test_an_app_id_reaches_its_own_repository_only(
    platform: Platform,
    git_server: GitServer,
    app: App,
    owner: NewUser,
    theirs: App,
    worktree: WorkTree,
) -> None:
    mine = _seed(platform, app, worktree)
    own_status, own = _raw_get(
        git_server, f"/{app.id}.git/info/refs?service=git-upload-pack", owner.api_key
    )
    their_status, _ = _raw_get(
        git_server, f"/{theirs.id}.git/info/refs?service=git-upload-pack", owner.api_key
    )

    assert own_status == 200
    assert mine.encode() in own
    assert their_status == 404


def test_a_push_under_a_tricky_name_changes_no_other_repository(
    platform: Platform,
    git_server: GitServer,
    app: App,
    owner: NewUser,
    theirs: App,
    worktree: WorkTree,
) -> None:
    before = _refs(platform, theirs)
    worktree.commit({"Procfile": PROCFILE, "README": "mine\n"})
    host = git_server.base_url.removeprefix("http://")
    for name in ("theirs", "..%2Ftheirs", theirs.id, "shipit%2F..%2Ftheirs"):
        code, _ = worktree.push(f"http://x:{owner.api_key}@{host}/{name}.git")
        assert code != 0, name

    assert _refs(platform, theirs) == before
