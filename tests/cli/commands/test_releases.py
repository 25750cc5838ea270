"""releases, releases:info, releases:rollback (rollback)."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi


@pytest.fixture(autouse=True)
def _shop(fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.add_release("shop", "Initial release")
    fake.add_release("shop", "Deploy 1a2b3c4d")
    fake.add_release("shop", "Set FOO config vars")


def test_releases_newest_first(dock: Dock) -> None:
    result = dock("releases", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "=== shop Releases - Current: v3\n"
        "v3  Set FOO config vars  dev@example.com  2026/01/01 11:58:00 +0000\n"
        "v2  Deploy 1a2b3c4d      dev@example.com  2026/01/01 11:58:00 +0000\n"
        "v1  Initial release      dev@example.com  2026/01/01 11:58:00 +0000\n"
    )


def test_releases_marks_failed_ones_and_limits_the_count(dock: Dock, fake: FakeApi) -> None:
    fake.add_release("shop", "Deploy 99999999", status="failed")
    lines = dock("releases", "-n", "2", "-a", "shop").stdout.splitlines()
    assert lines[0] == "=== shop Releases - Current: v3"
    assert lines[1].startswith("v4  Deploy 99999999 (release command failed)")
    assert len(lines) == 3


def test_releases_json_follows_pagination(dock: Dock, fake: FakeApi) -> None:
    fake.page_size = 2
    result = dock("releases", "-a", "shop", "--json")
    assert [r["version"] for r in json.loads(result.stdout)] == [3, 2, 1]
    assert len([r for r in fake.requests if r.path == "/apps/shop/releases"]) == 2


def test_releases_info_defaults_to_the_current_release(dock: Dock) -> None:
    result = dock("releases:info", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "=== Release v3"
    assert "Change:  Set FOO config vars" in result.stdout


def test_releases_info_by_version(dock: Dock, fake: FakeApi) -> None:
    result = dock("releases:info", "v2", "-a", "shop", "--json")
    assert json.loads(result.stdout)["description"] == "Deploy 1a2b3c4d"
    assert fake.sent() == [("GET", "/apps/shop/releases/2", None)]


def test_releases_info_rejects_a_non_version(dock: Dock) -> None:
    assert dock("releases:info", "latest", "-a", "shop").exit_code == 2


def test_rollback_defaults_to_the_release_before_the_current_one(dock: Dock, fake: FakeApi) -> None:
    result = dock("releases:rollback", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("POST", "/apps/shop/releases", {"release": "rel-shop-2"})]
    assert result.stderr.startswith("Rolling back shop to v2... done, v4\n")


def test_rollback_skips_failed_releases(dock: Dock, fake: FakeApi) -> None:
    fake.releases["shop"][1]["status"] = "failed"
    dock("rollback", "-a", "shop")
    assert fake.writes() == [("POST", "/apps/shop/releases", {"release": "rel-shop-1"})]


def test_rollback_to_a_named_version(dock: Dock, fake: FakeApi) -> None:
    result = dock("rollback", "v1", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [("POST", "/apps/shop/releases", {"release": "rel-shop-1"})]


def test_rollback_with_nothing_before(dock: Dock, fake: FakeApi) -> None:
    fake.releases["shop"] = fake.releases["shop"][:1]
    result = dock("rollback", "-a", "shop")
    assert result.exit_code == 1
    assert "nothing to roll back to" in result.stderr
    assert fake.writes() == []


def test_rollback_to_a_missing_version(dock: Dock, fake: FakeApi) -> None:
    result = dock("rollback", "v9", "-a", "shop")
    assert result.exit_code == 1
    assert result.stderr == " !    Couldn't find that release: 9\n"
