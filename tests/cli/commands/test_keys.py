"""``dockyard keys``, ``keys:add``, ``keys:remove``, ``keys:clear`` against the real Platform API (served
by uvicorn on an ephemeral loopback port), with keys made by ``ssh-keygen``."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner, Result

from dockyard._util import proc
from dockyard.api.app import create_app
from dockyard.cli.context import CliContext
from dockyard.cli.main import cli
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import Platform
from dockyard.control.keys import list_keys


@pytest.fixture
def api_url(platform: Platform) -> Iterator[str]:
    """The real API of ``platform`` on an ephemeral loopback port."""
    app = create_app(platform, internal_token="internal-test-token")
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False)
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # start-up wait only; no test logic depends on timing
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def user(platform: Platform) -> NewUser:
    return create_user(platform, "dev@example.com")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    return path


def keygen(path: Path, *args: str) -> Path:
    """A key pair made by ssh-keygen (ed25519 unless ``args`` say otherwise); returns the public
    key's path."""
    kind = args or ("-t", "ed25519")
    proc.run(["ssh-keygen", "-q", "-N", "", "-C", f"{path.name}@laptop", "-f", path, *kind])
    return path.with_name(path.name + ".pub")


def run(api_url: str, user: NewUser, home: Path, *args: str) -> Result:
    env = {"HOME": str(home), "DOCKYARD_API_URL": api_url, "DOCKYARD_API_KEY": user.api_key}
    context = CliContext(env=env, cwd=home, terminal=False)
    return CliRunner().invoke(cli, list(args), obj=context)


def test_keys_add_uploads_the_default_key_and_shows_its_fingerprint(
    platform: Platform, api_url: str, user: NewUser, home: Path
) -> None:
    public = keygen(home / ".ssh" / "id_ed25519", "-t", "ed25519")
    fingerprint = proc.run(["ssh-keygen", "-l", "-f", public]).text.split()[1]

    result = run(api_url, user, home, "keys:add")

    assert result.exit_code == 0, result.output
    assert f"Uploading {public} SSH key... done" in result.output
    assert f"Fingerprint: {fingerprint}" in result.output
    assert [k.fingerprint for k in list_keys(platform, user.account)] == [fingerprint]


def test_keys_add_falls_back_to_ecdsa_then_rsa(
    platform: Platform, api_url: str, user: NewUser, home: Path
) -> None:
    keygen(home / ".ssh" / "id_rsa", "-t", "rsa", "-b", "2048")
    ecdsa = keygen(home / ".ssh" / "id_ecdsa", "-t", "ecdsa")

    result = run(api_url, user, home, "keys:add")

    assert result.exit_code == 0, result.output
    assert f"Uploading {ecdsa} SSH key" in result.output
    (key,) = list_keys(platform, user.account)
    assert key.public_key.startswith("ecdsa-sha2-nistp256 ")


def test_keys_add_of_a_given_path(
    platform: Platform, api_url: str, user: NewUser, home: Path, tmp_path: Path
) -> None:
    public = keygen(tmp_path / "deploy", "-t", "ed25519")

    result = run(api_url, user, home, "keys:add", str(public))

    assert result.exit_code == 0, result.output
    assert [k.comment for k in list_keys(platform, user.account)] == ["deploy@laptop"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-t", "dsa"), "DSA keys are not accepted"),
        (("-t", "rsa", "-b", "1024"), "RSA keys must have at least 2048 bits; this one has 1024"),
    ],
    ids=["dsa", "rsa-1024"],
)
def test_weak_keys_are_refused_with_the_reason(
    platform: Platform,
    api_url: str,
    user: NewUser,
    home: Path,
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    public = keygen(tmp_path / "weak", *args)

    result = run(api_url, user, home, "keys:add", str(public))

    assert result.exit_code == 1
    assert message in result.output
    assert list_keys(platform, user.account) == []


def test_keys_add_explains_a_missing_key_and_a_private_key(
    api_url: str, user: NewUser, home: Path, tmp_path: Path
) -> None:
    missing = run(api_url, user, home, "keys:add")
    private = keygen(tmp_path / "mine", "-t", "ed25519").with_suffix("")
    given_private = run(api_url, user, home, "keys:add", str(private))

    assert missing.exit_code == 1
    assert "No SSH public key found" in missing.output
    assert "ssh-keygen -t ed25519" in missing.output
    assert given_private.exit_code == 1
    assert "is a private key" in given_private.output


def test_keys_lists_fingerprints_and_comments_and_json(
    api_url: str, user: NewUser, home: Path, tmp_path: Path
) -> None:
    for name in ("one", "two"):
        assert run(api_url, user, home, "keys:add", str(keygen(tmp_path / name))).exit_code == 0

    listed = run(api_url, user, home, "keys")
    as_json = run(api_url, user, home, "keys", "--json")

    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "=== dev@example.com keys"
    assert [line.split()[-1] for line in lines[1:]] == ["one@laptop", "two@laptop"]
    assert all(line.startswith("SHA256:") and "..." in line for line in lines[1:])
    data = json.loads(as_json.output)
    assert sorted(k["comment"] for k in data) == ["one@laptop", "two@laptop"]
    assert {k["email"] for k in data} == {"dev@example.com"}


def test_keys_without_keys_says_so(api_url: str, user: NewUser, home: Path) -> None:
    result = run(api_url, user, home, "keys")

    assert result.exit_code == 0
    assert result.output.splitlines() == ["=== dev@example.com keys", "You have no SSH keys."]


@pytest.mark.parametrize("ref", ["fingerprint", "bare-fingerprint", "comment", "id"])
def test_keys_remove_by_fingerprint_comment_or_id(
    platform: Platform, api_url: str, user: NewUser, home: Path, tmp_path: Path, ref: str
) -> None:
    run(api_url, user, home, "keys:add", str(keygen(tmp_path / "keep")))
    run(api_url, user, home, "keys:add", str(keygen(tmp_path / "drop")))
    drop = next(k for k in list_keys(platform, user.account) if k.comment == "drop@laptop")
    given = {
        "fingerprint": drop.fingerprint,
        "bare-fingerprint": drop.fingerprint.removeprefix("SHA256:"),
        "comment": drop.comment,
        "id": drop.id,
    }[ref]

    result = run(api_url, user, home, "keys:remove", given)

    assert result.exit_code == 0, result.output
    assert "Removing drop@laptop SSH key... done" in result.output
    assert [k.comment for k in list_keys(platform, user.account)] == ["keep@laptop"]


def test_keys_remove_of_an_unknown_key_fails(
    platform: Platform, api_url: str, user: NewUser, home: Path, tmp_path: Path
) -> None:
    run(api_url, user, home, "keys:add", str(keygen(tmp_path / "keep")))

    result = run(api_url, user, home, "keys:remove", "nobody@nowhere")

    assert result.exit_code == 1
    assert "No SSH key matches 'nobody@nowhere'" in result.output
    assert len(list_keys(platform, user.account)) == 1


def test_keys_clear_removes_every_key(
    platform: Platform, api_url: str, user: NewUser, home: Path, tmp_path: Path
) -> None:
    for name in ("one", "two"):
        run(api_url, user, home, "keys:add", str(keygen(tmp_path / name)))

    result = run(api_url, user, home, "keys:clear")

    assert result.exit_code == 0, result.output
    assert "Removing all SSH keys... done, 2 removed" in result.output
    assert list_keys(platform, user.account) == []


def test_keys_long_shows_the_whole_public_key(
    platform: Platform, api_url: str, user: NewUser, home: Path, tmp_path: Path
) -> None:
    run(api_url, user, home, "keys:add", str(keygen(tmp_path / "one")))
    (key,) = list_keys(platform, user.account)

    result = run(api_url, user, home, "keys", "--long")

    assert result.exit_code == 0, result.output
    assert key.public_key.split()[1] in result.output
