"""domains, domains:add, domains:remove."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi


@pytest.fixture(autouse=True)
def _shop(fake: FakeApi) -> None:
    fake.add_app("shop")


def test_domains_add_posts_hostname_and_null_sni(dock: Dock, fake: FakeApi) -> None:
    result = dock("domains:add", "www.example.com", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [
        ("POST", "/apps/shop/domains", {"hostname": "www.example.com", "sni_endpoint": None})
    ]
    assert result.stderr == "Adding www.example.com to shop... done\n"
    assert "DNS Target shop.dockyard.localhost" in result.stdout


def test_domains_lists_platform_then_custom(dock: Dock, fake: FakeApi) -> None:
    dock("domains:add", "www.example.com", "-a", "shop")
    result = dock("domains", "-a", "shop")
    assert result.stdout == (
        "=== shop Dockyard Domain\n"
        "shop.dockyard.localhost\n"
        "\n"
        "=== shop Custom Domains\n"
        "Domain Name      DNS Record Type  DNS Target               Status\n"
        "───────────────  ───────────────  ───────────────────────  ─────────\n"
        "www.example.com  CNAME            shop.dockyard.localhost  succeeded\n"
    )


def test_domains_json(dock: Dock) -> None:
    result = dock("domains", "-a", "shop", "--json")
    assert [d["hostname"] for d in json.loads(result.stdout)] == ["shop.dockyard.localhost"]


def test_domains_remove(dock: Dock, fake: FakeApi) -> None:
    dock("domains:add", "www.example.com", "-a", "shop")
    result = dock("domains:remove", "www.example.com", "-a", "shop")
    assert result.exit_code == 0
    assert fake.writes()[-1] == ("DELETE", "/apps/shop/domains/www.example.com", None)
    assert result.stderr == "Removing www.example.com from shop... done\n"


def test_domains_remove_unknown(dock: Dock) -> None:
    result = dock("domains:remove", "nope.example.com", "-a", "shop")
    assert result.exit_code == 1
    assert result.stderr.endswith(" !    Couldn't find that domain: nope.example.com\n")
