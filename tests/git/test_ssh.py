"""Git over SSH against the real ``ssh`` client and ``git``: the asyncssh server runs in-process on
an ephemeral loopback port, keys are made with ``ssh-keygen`` and registered through the real
``/account/keys`` API."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from fastapi.testclient import TestClient

from dockyard._util import proc
from dockyard._util.clock import FakeClock
from dockyard.api.app import create_app
from dockyard.audit.writer import AuditWriter
from dockyard.auth.ratelimit import RateLimiter
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import Platform
from dockyard.control.keys import list_keys, remove_key
from dockyard.errors import AccessDeniedError, NotFoundError
from dockyard.git.repos import GitRepos
from dockyard.git.ssh import GitCommand, GitSshServer, ensure_host_key, parse_command
from dockyard.settings import Settings
from dockyard.store.records import App
from tests.conftest import make_settings
from tests.git.conftest import WorkTree, make_app, serve

PROCFILE = "web: python3 -m http.server $PORT\n"
ACCEPT = "application/vnd.heroku+json; version=3"


# -- keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private: Path

    @property
    def public(self) -> str:
        return self.private.with_suffix(".pub").read_text(encoding="utf-8").strip()


def _keygen(directory: Path, name: str, *args: str) -> KeyPair:
    path = directory / name
    proc.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", path, *args], timeout=60)
    return KeyPair(path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    return {
        "owner": _keygen(directory, "owner", "-t", "ed25519"),
        "stranger": _keygen(directory, "stranger", "-t", "ed25519"),
        "unregistered": _keygen(directory, "unregistered", "-t", "ed25519"),
        "rsa": _keygen(directory, "rsa", "-t", "rsa", "-b", "2048"),
        "dsa": _keygen(directory, "dsa", "-t", "dsa"),
        "rsa1024": _keygen(directory, "rsa1024", "-t", "rsa", "-b", "1024"),
    }


@pytest.fixture
def api(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, internal_token="internal-test-token")) as client:
        yield client


def register(api: TestClient, user: NewUser, key: KeyPair) -> None:
    response = api.post(
        "/account/keys",
        json={"public_key": key.public},
        headers={"Authorization": f"Bearer {user.api_key}", "Accept": ACCEPT},
    )
    assert response.status_code == 201, response.text


# -- the server --------------------------------------------------------------------------------------


@contextmanager
def serve_ssh(platform: Platform, limiter: RateLimiter | None = None) -> Iterator[int]:
    """The git SSH server of ``platform`` on an ephemeral loopback port, in a thread with its own
    event loop, for the duration of the block."""
    server = GitSshServer(platform, limiter=limiter)
    ready = threading.Event()
    state: dict[str, object] = {}

    async def run() -> None:
        acceptor = await server.listen("127.0.0.1", 0)
        stop = asyncio.Event()
        state["port"] = acceptor.get_port()
        state["stop"] = (asyncio.get_running_loop(), stop)
        ready.set()
        await stop.wait()
        acceptor.close()
        await acceptor.wait_closed()

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    if not ready.wait(10) or "error" in state:
        raise RuntimeError(f"the test SSH server did not start: {state.get('error')}")
    try:
        yield int(str(state["port"]))
    finally:
        loop, stop = state["stop"]  # type: ignore[misc]
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


@pytest.fixture
def port(platform: Platform) -> Iterator[int]:
    """The SSH server, with the API its pushes' hooks hand the builds to."""
    with serve(platform), serve_ssh(platform) as bound:
        yield bound


@pytest.fixture
def owner_key(api: TestClient, owner: NewUser, keys: dict[str, KeyPair]) -> KeyPair:
    register(api, owner, keys["owner"])
    return keys["owner"]


def ssh_options(key: KeyPair, log_level: str = "ERROR") -> list[str]:
    return [
        "-i",
        str(key.private),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        f"LogLevel={log_level}",
    ]


def use_key(tree: WorkTree, key: KeyPair) -> WorkTree:
    """The work tree with git talking SSH with ``key``."""
    env = dict(tree.env, GIT_SSH_COMMAND=shlex.join(["ssh", *ssh_options(key)]))
    return WorkTree(tree.path, env)


def url(port: int, app: str) -> str:
    return f"ssh://git@127.0.0.1:{port}/{app}.git"


def ssh(
    key: KeyPair, port: int, *args: str, env: dict[str, str], log_level: str = "ERROR"
) -> tuple[int, str]:
    """Run the real ``ssh`` client against the server; exit code and stderr + stdout."""
    argv = ["ssh", *ssh_options(key, log_level), "-p", str(port), *args]
    result = proc.run(argv, env=env, check=False, timeout=60, input=b"")
    return result.returncode, result.stderr.decode("utf-8", "replace") + result.text


def seed(platform: Platform, app: App, tree: WorkTree) -> str:
    """Put the work tree's ``main`` into the app's repository without a push (so without a build):
    a fetch into a bare repository runs no receive hooks."""
    sha = tree.commit({"Procfile": PROCFILE})
    repo = GitRepos(platform.settings.repos_dir).ensure(app.id)
    proc.run(["git", "fetch", "--quiet", str(tree.path), "main:main"], cwd=repo, env=tree.env)
    return sha


def releases(platform: Platform, app: App) -> list[int]:
    with platform.store.read() as tx:
        return [r.version for r in tx.list_releases(app.id)]


# -- pushing and fetching ---------------------------------------------------------------------------


def test_a_push_over_ssh_builds_and_releases_with_the_output_as_remote_lines(
    platform: Platform, port: int, app: App, owner_key: KeyPair, worktree: WorkTree
) -> None:
    tree = use_key(worktree, owner_key)
    tree.commit({"Procfile": PROCFILE})
    code, output = tree.push(url(port, app.name))

    assert code == 0, output
    assert "remote: -----> " in output
    assert "Released v2" in output
    assert releases(platform, app) == [1, 2]


def test_an_rsa_2048_key_clones_the_repository(
    platform: Platform,
    port: int,
    app: App,
    api: TestClient,
    owner: NewUser,
    keys: dict[str, KeyPair],
    worktree: WorkTree,
    tmp_path: Path,
) -> None:
    register(api, owner, keys["rsa"])
    sha = seed(platform, app, worktree)
    tree = use_key(worktree, keys["rsa"])

    tree.git("clone", "--quiet", url(port, app.name), str(tmp_path / "clone"))

    clone = WorkTree(tmp_path / "clone", tree.env)
    assert clone.git("rev-parse", "HEAD").text.strip() == sha
    assert (tmp_path / "clone" / "Procfile").read_text() == PROCFILE


def test_a_collaborator_may_push(
    platform: Platform,
    port: int,
    app: App,
    api: TestClient,
    stranger: NewUser,
    keys: dict[str, KeyPair],
    worktree: WorkTree,
) -> None:
    """Authorized for ``deploy``: receive-pack runs (nothing new, so nothing is built)."""
    register(api, stranger, keys["stranger"])
    with platform.store.transaction() as tx:
        tx.add_collaborator(app.id, stranger.account.id)
    seed(platform, app, worktree)

    code, output = use_key(worktree, keys["stranger"]).push(url(port, app.name))

    assert code == 0, output
    assert "Everything up-to-date" in output


def test_someone_elses_app_is_not_found(
    platform: Platform,
    port: int,
    app: App,
    api: TestClient,
    stranger: NewUser,
    keys: dict[str, KeyPair],
    worktree: WorkTree,
) -> None:
    register(api, stranger, keys["stranger"])
    tree = use_key(worktree, keys["stranger"])
    tree.commit({"Procfile": PROCFILE})

    push_code, push_output = tree.push(url(port, app.name))
    fetch = tree.git("ls-remote", url(port, app.name), check=False)

    assert push_code != 0
    assert f"Couldn't find that app: {app.name}" in push_output
    assert fetch.returncode != 0
    assert "Couldn't find that app" in fetch.stderr.decode()
    assert releases(platform, app) == [1]


def test_an_unregistered_key_is_refused(
    port: int, app: App, owner_key: KeyPair, keys: dict[str, KeyPair], worktree: WorkTree
) -> None:
    result = use_key(worktree, keys["unregistered"]).git(
        "ls-remote", url(port, app.name), check=False
    )

    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr.decode()


def test_a_removed_key_stops_working_on_the_next_connection(
    platform: Platform, port: int, app: App, owner: NewUser, owner_key: KeyPair, worktree: WorkTree
) -> None:
    tree = use_key(worktree, owner_key)
    assert tree.git("ls-remote", url(port, app.name), check=False).returncode == 0
    (registered,) = list_keys(platform, owner.account)
    remove_key(platform, owner.account, registered.fingerprint)

    result = tree.git("ls-remote", url(port, app.name), check=False)

    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr.decode()


def test_an_app_id_names_the_same_repository_as_its_name(
    platform: Platform, port: int, app: App, owner_key: KeyPair, worktree: WorkTree
) -> None:
    sha = seed(platform, app, worktree)

    result = use_key(worktree, owner_key).git("ls-remote", url(port, app.id))

    assert f"{sha}\trefs/heads/main" in result.text


def test_protocol_v2_is_spoken_when_git_asks_for_it(
    platform: Platform, port: int, app: App, owner_key: KeyPair, worktree: WorkTree
) -> None:
    """``GIT_PROTOCOL`` is the one client variable that reaches git."""
    seed(platform, app, worktree)
    tree = use_key(worktree, owner_key)
    tree.env["GIT_TRACE_PACKET"] = "1"

    result = tree.git("-c", "protocol.version=2", "ls-remote", url(port, app.name))

    assert "ls-remote< version 2" in result.stderr.decode()


# -- limits -------------------------------------------------------------------------------------------


def test_pushes_are_limited_per_account_and_app_and_come_back_with_time(
    platform: Platform, app: App, owner_key: KeyPair, worktree: WorkTree
) -> None:
    clock = FakeClock()
    seed(platform, app, worktree)
    tree = use_key(worktree, owner_key)
    with serve_ssh(platform, RateLimiter(2, clock)) as bound:
        remote = url(bound, app.name)
        first = [tree.push(remote)[0] for _ in range(2)]
        code, output = tree.push(remote)
        fetch = tree.git("ls-remote", remote, check=False)
        clock.advance(1800)
        later, _ = tree.push(remote)

    assert first == [0, 0]
    assert code != 0
    assert f"Too many pushes to {app.name}: the limit is 2 an hour" in output
    assert "Try again in 1800 s." in output
    assert fetch.returncode == 0
    assert later == 0


def test_a_pack_over_the_size_limit_is_refused(
    tmp_path: Path,
    keys: dict[str, KeyPair],
    worktree: WorkTree,
    start_audit_writer: Callable[[Settings], AuditWriter],
) -> None:
    settings = make_settings(tmp_path / "small", DOCKYARD_BUILD_MAX_REPO_BYTES="2000")
    start_audit_writer(settings)
    small = Platform.open(settings)
    try:
        user = create_user(small, "big@example.com")
        app = make_app(small, user)
        with TestClient(create_app(small, internal_token="t")) as client:
            register(client, user, keys["owner"])
        tree = use_key(worktree, keys["owner"])
        tree.commit({"Procfile": PROCFILE, "data.bin": os.urandom(8000).hex()})
        with serve_ssh(small) as bound:
            code, output = tree.push(url(bound, app.name))
        assert code != 0
        assert "pack exceeds maximum allowed size" in output
        assert releases(small, app) == [1]
    finally:
        small.close()


# -- what is refused ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "command", "message"),
    [
        ([], [], "There is no shell here"),
        ([], ["bash"], "Command 'bash' is not allowed"),
        ([], ["sh", "-c", "'git-upload-pack shipit.git'"], "Command 'sh' is not allowed"),
        ([], ["git-upload-pack", "shipit.git", "extra"], "takes exactly one argument"),
        (["-s"], ["sftp"], "The 'sftp' subsystem is not available"),
        (["-tt"], ["git-upload-pack", "shipit.git"], "asked for a terminal"),
    ],
    ids=["shell", "bash", "sh-c", "extra-argument", "sftp", "pty"],
)
def test_shells_terminals_other_commands_and_subsystems_are_refused(
    port: int,
    app: App,
    owner_key: KeyPair,
    worktree: WorkTree,
    options: list[str],
    command: list[str],
    message: str,
) -> None:
    code, output = ssh(owner_key, port, *options, "git@127.0.0.1", *command, env=worktree.env)

    assert code == 1, output
    assert message in output
    assert "only runs git-receive-pack and git-upload-pack" in output


def test_a_terminal_session_is_refused_with_the_reason(
    port: int, app: App, owner_key: KeyPair, worktree: WorkTree
) -> None:
    """What someone typing ``ssh git@host`` at a terminal sees."""
    code, output = ssh(owner_key, port, "-tt", "git@127.0.0.1", env=worktree.env)

    assert code == 1
    assert "Terminals are not available (do not use ssh -t)" in output


def test_port_forwarding_is_refused(
    port: int, app: App, owner_key: KeyPair, worktree: WorkTree
) -> None:
    local_code, local = ssh(
        owner_key,
        port,
        "-W",
        f"127.0.0.1:{port}",
        "git@127.0.0.1",
        env=worktree.env,
        log_level="INFO",  # ssh reports the server's reason at this level
    )
    remote_code, remote = ssh(
        owner_key,
        port,
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        "0:127.0.0.1:9",
        "git@127.0.0.1",
        f"git-upload-pack '{app.name}.git'",
        env=worktree.env,
    )

    assert local_code == 255
    assert "administratively prohibited" in local
    assert "does not forward ports" in local
    assert remote_code == 255
    assert "remote port forwarding failed" in remote


def test_x11_forwarding_is_refused(port: int, app: App, owner_key: KeyPair, tmp_path: Path) -> None:
    """OpenSSH's ``ssh -X`` needs a display; asyncssh's client asks for X11 without one."""

    async def attempt() -> str:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="git",
            client_keys=[str(owner_key.private)],
            known_hosts=None,
            agent_path=None,
            config=None,
        ) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.run(
                    f"git-upload-pack '{app.name}.git'",
                    x11_forwarding=True,
                    x11_display="localhost:0",
                    x11_auth_path=str(tmp_path / "xauth"),
                    input="0000",
                )
            return refused.value.reason

    assert asyncio.run(attempt()) == "X11 forwarding request failed"


@pytest.mark.parametrize(
    "path",
    ["'../theirs.git'", "'/shop.git/../theirs.git'", "'%2e%2e/theirs.git'", "theirs.git"],
)
def test_paths_never_reach_another_apps_repository(
    platform: Platform,
    port: int,
    app: App,
    stranger: NewUser,
    owner_key: KeyPair,
    worktree: WorkTree,
    path: str,
) -> None:
    theirs = make_app(platform, stranger, "theirs")
    seed(platform, theirs, worktree)

    code, output = ssh(
        owner_key, port, "git@127.0.0.1", f"git-upload-pack {path}", env=worktree.env
    )

    assert code == 1
    assert "Couldn't find that app" in output
    assert "refs/heads/main" not in output


def test_the_id_of_someone_elses_app_is_not_found_either(
    platform: Platform,
    port: int,
    app: App,
    stranger: NewUser,
    owner_key: KeyPair,
    worktree: WorkTree,
) -> None:
    theirs = make_app(platform, stranger, "theirs")
    seed(platform, theirs, worktree)

    code, output = ssh(
        owner_key, port, "git@127.0.0.1", f"git-upload-pack '{theirs.id}.git'", env=worktree.env
    )

    assert code == 1
    assert f"Couldn't find that app: {theirs.name}" in output


def test_weak_keys_are_refused_when_added(
    api: TestClient, owner: NewUser, keys: dict[str, KeyPair]
) -> None:
    headers = {"Authorization": f"Bearer {owner.api_key}", "Accept": ACCEPT}
    dsa = api.post("/account/keys", json={"public_key": keys["dsa"].public}, headers=headers)
    short = api.post("/account/keys", json={"public_key": keys["rsa1024"].public}, headers=headers)

    assert dsa.status_code == 422
    assert "DSA keys are not accepted" in dsa.json()["message"]
    assert short.status_code == 422
    assert "at least 2048 bits; this one has 1024" in short.json()["message"]
    assert api.get("/account/keys", headers=headers).json() == []


# -- logging, host key, command parsing -----------------------------------------------------------------


def test_each_connection_is_logged_with_account_app_service_and_outcome(
    platform: Platform,
    port: int,
    app: App,
    owner_key: KeyPair,
    keys: dict[str, KeyPair],
    worktree: WorkTree,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dockyard.git.ssh")
    seed(platform, app, worktree)
    use_key(worktree, owner_key).git("ls-remote", url(port, app.name))
    ssh(owner_key, port, "git@127.0.0.1", "bash", env=worktree.env)
    use_key(worktree, keys["unregistered"]).git("ls-remote", url(port, app.name), check=False)

    expected = [
        "account=owner@example.com app=shipit service=git-upload-pack outcome=exit 0",
        "account=owner@example.com app=- service=- outcome=refused: Command 'bash'",
        "account=- app=- service=- outcome=authentication failed",
    ]

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "dockyard.git.ssh"]

    # The server logs a connection when it sees it close, which may be just after ssh exits.
    deadline = time.monotonic() + 10
    while len(logged()) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = logged()
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_git_ssh_role_serves_until_sigterm(
    platform: Platform, app: App, owner_key: KeyPair, worktree: WorkTree, tmp_path: Path
) -> None:
    """``python -m dockyard.serve git-ssh``: what ``dockyard up`` starts."""
    sha = seed(platform, app, worktree)
    bound = _free_port()
    env = {**os.environ, **platform.settings.to_env(), "DOCKYARD_GIT_SSH_PORT": str(bound)}
    log = (tmp_path / "git-ssh.log").open("wb")
    argv = [sys.executable, "-m", "dockyard.serve", "git-ssh"]
    server = proc.spawn(argv, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:  # start-up wait only
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", bound)) == 0:
                    break
            assert server.poll() is None and time.monotonic() < deadline, "git-ssh did not start"
            time.sleep(0.05)
        listed = use_key(worktree, owner_key).git("ls-remote", url(bound, app.name))
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        log.close()

    assert f"{sha}\trefs/heads/main" in listed.text
    assert code == 0
    key_file = platform.settings.ssh_host_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    output = (tmp_path / "git-ssh.log").read_text()
    assert f"git over SSH listening on 127.0.0.1:{bound}" in output


def test_the_host_key_is_made_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "ssh_host_ed25519_key"

    first = ensure_host_key(path)
    second = ensure_host_key(path)

    assert first.get_fingerprint() == second.get_fingerprint()
    assert first.algorithm == b"ssh-ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize(
    "command",
    [
        "git-receive-pack 'shop.git'",
        "git-receive-pack '/shop.git'",
        "git-receive-pack shop.git",
        'git-receive-pack "/shop.git"',
    ],
)
def test_the_git_commands_git_sends_are_understood(command: str) -> None:
    assert parse_command(command) == GitCommand("git-receive-pack", "shop")


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("git-upload-pack 'shop'", NotFoundError),
        ("git-upload-pack 'a/b.git'", NotFoundError),
        ("git-upload-pack '.git'", NotFoundError),
        ("git-upload-pack 'shop.git", AccessDeniedError),
        ("git receive-pack 'shop.git'", AccessDeniedError),
        ("", AccessDeniedError),
    ],
)
def test_anything_else_is_refused(command: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_command(command)
