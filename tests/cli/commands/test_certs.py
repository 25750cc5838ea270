"""``dockyard certs``, ``certs:add``, ``certs:update``, ``certs:info``, ``certs:remove`` against the
real Platform API (uvicorn on an ephemeral loopback port), with certificates made by ``openssl``."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import uvicorn
from click.testing import CliRunner, Result

from dockyard._util import proc
from dockyard.api.app import create_app
from dockyard.cli.commands import certs
from dockyard.cli.context import CliContext
from dockyard.cli.main import DockyardGroup
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import STACK, Platform


@click.group(cls=DockyardGroup)
@click.pass_context
def group(ctx: click.Context) -> None:
    """``dockyard`` with the certs topic (as the CLI's main group wires it)."""
    ctx.call_on_close(ctx.ensure_object(CliContext).close)


for command in certs.COMMANDS:
    group.add_command(command)
assert isinstance(group, DockyardGroup)
group.aliases.update(certs.ALIASES)


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
    owner = create_user(platform, "dev@example.com")
    with platform.store.transaction() as tx:
        tx.create_app("shop", owner.account.id, STACK)
    return owner


def openssl_cert(directory: Path, name: str, *hosts: str) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for ``hosts`` and its key, made by openssl."""
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    proc.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "800",
            "-subj",
            f"/O=Example/CN={hosts[0]}",
            "-addext",
            "subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts),
            "-keyout",
            key,
            "-out",
            crt,
        ]
    )
    return crt, key


def run(api_url: str, user: NewUser, cwd: Path, *args: str) -> Result:
    env = {"HOME": str(cwd), "DOCKYARD_API_URL": api_url, "DOCKYARD_API_KEY": user.api_key}
    context = CliContext(env=env, cwd=cwd, terminal=False)
    return CliRunner().invoke(group, list(args), obj=context)


def test_certs_add_uploads_the_files_and_shows_the_details(
    api_url: str, user: NewUser, tmp_path: Path
) -> None:
    crt, key = openssl_cert(tmp_path, "shop", "shop.example.org", "www.example.org")
    result = run(api_url, user, tmp_path, "certs:add", crt.name, key.name, "-a", "shop")
    assert result.exit_code == 0, result.output
    assert "Adding SSL certificate to shop... done" in result.stderr
    assert "Common Name(s): shop.example.org, www.example.org" in result.stdout
    assert "Subject:        /O=Example/CN=shop.example.org" in result.stdout
    assert "SSL certificate is self signed." in result.stdout


def test_certs_lists_and_info_shows_the_only_certificate(
    api_url: str, user: NewUser, tmp_path: Path
) -> None:
    empty = run(api_url, user, tmp_path, "certs", "-a", "shop")
    assert (
        empty.stdout
        == "shop has no SSL certificates.\nUse dockyard certs:add CRT KEY to add one.\n"
    )
    crt, key = openssl_cert(tmp_path, "shop", "shop.example.org")
    run(api_url, user, tmp_path, "certs:add", str(crt), str(key), "-a", "shop")
    listed = run(api_url, user, tmp_path, "certs", "-a", "shop")
    header, _, row = listed.stdout.splitlines()
    assert header.split() == ["Name", "Common", "Name(s)", "Expires", "Trusted", "Type", "Domains"]
    assert "shop.example.org" in row and "False" in row and "SNI" in row
    info = run(api_url, user, tmp_path, "certs:info", "-a", "shop")
    assert info.exit_code == 0, info.output
    assert "Common Name(s): shop.example.org" in info.stdout
    as_json = json.loads(run(api_url, user, tmp_path, "certs", "-a", "shop", "--json").stdout)
    assert as_json[0]["ssl_cert"]["cert_domains"] == ["shop.example.org"]


def test_with_several_certificates_a_name_must_be_given(
    api_url: str, user: NewUser, tmp_path: Path
) -> None:
    for name in ("one", "two"):
        crt, key = openssl_cert(tmp_path, name, f"{name}.example.org")
        run(api_url, user, tmp_path, "certs:add", str(crt), str(key), "-a", "shop")
    listed = json.loads(run(api_url, user, tmp_path, "certs", "-a", "shop", "--json").stdout)
    ambiguous = run(api_url, user, tmp_path, "certs:info", "-a", "shop")
    assert ambiguous.exit_code == 1
    assert "choose one with --name" in ambiguous.stderr
    named = run(api_url, user, tmp_path, "certs:info", "-a", "shop", "--name", listed[1]["name"])
    assert named.exit_code == 0, named.output
    assert listed[1]["ssl_cert"]["cert_domains"][0] in named.stdout


def test_certs_update_replaces_the_certificate_under_its_name(
    api_url: str, user: NewUser, tmp_path: Path
) -> None:
    crt, key = openssl_cert(tmp_path, "old", "shop.example.org")
    run(api_url, user, tmp_path, "certs:add", str(crt), str(key), "-a", "shop")
    crt, key = openssl_cert(tmp_path, "new", "shop.example.org", "new.example.org")
    updated = run(api_url, user, tmp_path, "certs:update", str(crt), str(key), "-a", "shop")
    assert updated.exit_code == 0, updated.output
    assert "Common Name(s): shop.example.org, new.example.org" in updated.stdout


def test_certs_remove_asks_for_the_app_name(api_url: str, user: NewUser, tmp_path: Path) -> None:
    crt, key = openssl_cert(tmp_path, "shop", "shop.example.org")
    run(api_url, user, tmp_path, "certs:add", str(crt), str(key), "-a", "shop")
    refused = run(api_url, user, tmp_path, "certs:remove", "-a", "shop", "--confirm", "nope")
    assert refused.exit_code == 1
    assert "did not match" in refused.stderr
    removed = run(api_url, user, tmp_path, "certs:remove", "-a", "shop", "--confirm", "shop")
    assert removed.exit_code == 0, removed.output
    assert "Removing SSL certificate " in removed.stderr and "from shop... done" in removed.stderr
    assert "no SSL certificates" in run(api_url, user, tmp_path, "certs", "-a", "shop").stdout


def test_a_key_that_does_not_fit_is_refused_with_the_apis_reason(
    api_url: str, user: NewUser, tmp_path: Path
) -> None:
    crt, _ = openssl_cert(tmp_path, "a", "shop.example.org")
    _, other = openssl_cert(tmp_path, "b", "shop.example.org")
    result = run(api_url, user, tmp_path, "certs:add", str(crt), str(other), "-a", "shop")
    assert result.exit_code == 1
    assert "does not match any certificate" in result.stderr
    missing = run(api_url, user, tmp_path, "certs:add", "nope.crt", str(other), "-a", "shop")
    assert missing.exit_code == 1
    assert "Cannot read the certificate" in missing.stderr
