"""auth:2fa, authorizations:create, apps:transfer, access:add and admin:deactivate against the real API
(in-process): a ``two_factor`` answer makes the command ask for the code and send it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.api.app import create_app
from dockyard.cli.main import cli
from dockyard.client.http import ApiClient
from dockyard.control import revocation
from dockyard.control.context import Platform
from tests.api.security_helpers import Member, member
from tests.cli.fakeapi import FakeApi, make_context


@pytest.fixture
def api(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, internal_token="internal")) as client:
        yield client


def run(api: TestClient, who: Member, tmp_path: Path, *args: str, input: str = "") -> Result:
    context = make_context(
        FakeApi(),
        env={"DOCKYARD_API_KEY": who.api_key, "HOME": str(tmp_path)},
        cwd=tmp_path,
        api_factory=lambda url, key: ApiClient("http://testserver", key, transport=api._transport),
    )
    return CliRunner().invoke(cli, list(args), obj=context, input=input)


def test_authorizations_create_asks_for_the_code(
    api: TestClient, platform: Platform, clock: FakeClock, tmp_path: Path
) -> None:
    ada = member(platform, clock, "ada@example.com")
    result = run(
        api, ada, tmp_path, "authorizations:create", "-s", "read", "-S", input=ada.code() + "\n"
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("dkya_")
    listed = run(api, ada, tmp_path, "authorizations")
    assert "read" in listed.output and "api-key" in listed.output
    status = run(api, ada, tmp_path, "auth:2fa")
    assert "Two-factor authentication is on" in status.output


def test_transfer_access_and_deactivation(
    api: TestClient, platform: Platform, clock: FakeClock, tmp_path: Path
) -> None:
    ada = member(platform, clock, "ada@example.com")
    bob = member(platform, clock, "bob@example.com")
    api.post("/apps", json={"name": "shop"}, headers=ada.key_headers)
    added = run(api, ada, tmp_path, "access:add", "bob@example.com", "-a", "shop")
    assert added.exit_code == 0, added.output
    wrong = run(api, ada, tmp_path, "apps:transfer", "bob@example.com", "-a", "shop", "-c", "shp")
    assert wrong.exit_code != 0 and "did not match" in wrong.output
    offered = run(
        api, ada, tmp_path, "apps:transfer", "bob@example.com", "-a", "shop", input="shop\n"
    )
    assert offered.exit_code == 0, offered.output
    transfer_id = run(api, bob, tmp_path, "apps:transfers").output.split()[0]
    accepted = run(api, bob, tmp_path, "apps:transfers:accept", transfer_id)
    assert accepted.exit_code == 0 and "accepted" in accepted.output
    revocation.set_role(platform, "bob@example.com", "admin")
    refused = run(api, bob, tmp_path, "admin:deactivate", "ada@example.com")
    assert refused.exit_code != 0 and "security key" in refused.output
