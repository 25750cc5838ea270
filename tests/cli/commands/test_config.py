"""config, config:get, config:set, config:unset."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Dock
from tests.cli.fakeapi import FakeApi


@pytest.fixture(autouse=True)
def _shop(fake: FakeApi) -> None:
    fake.add_app("shop")
    fake.add_release("shop", "Deploy abc")
    fake.config["shop"].update({"DATABASE_URL": "postgres://db/shop", "GREETING": "hello world"})


def test_config_lists_aligned_pairs(dock: Dock) -> None:
    result = dock("config", "-a", "shop")
    assert result.exit_code == 0
    assert result.stdout == (
        "=== shop Config Vars\nDATABASE_URL: postgres://db/shop\nGREETING:     hello world\n"
    )


def test_config_json(dock: Dock) -> None:
    result = dock("config", "-a", "shop", "--json")
    assert json.loads(result.stdout) == {
        "DATABASE_URL": "postgres://db/shop",
        "GREETING": "hello world",
    }


def test_config_shell_quotes_values(dock: Dock) -> None:
    result = dock("config", "-a", "shop", "--shell")
    assert result.stdout == "DATABASE_URL=postgres://db/shop\nGREETING='hello world'\n"


def test_config_get(dock: Dock) -> None:
    assert dock("config:get", "GREETING", "-a", "shop").stdout == "hello world\n"
    assert dock("config:get", "MISSING", "-a", "shop").stdout == "\n"
    assert dock("config:get", "GREETING", "-s", "-a", "shop").stdout == "GREETING='hello world'\n"


def test_config_set_sends_a_patch_and_reports_the_release(dock: Dock, fake: FakeApi) -> None:
    result = dock("config:set", "K=V", "EMPTY=", "URL=a=b", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [
        ("PATCH", "/apps/shop/config-vars", {"K": "V", "EMPTY": "", "URL": "a=b"})
    ]
    assert result.stderr == "Setting K, EMPTY and URL and restarting shop... done, v2\n"
    assert result.stdout == "K:     V\nEMPTY:\nURL:   a=b\n"


def test_config_set_one_key_message(dock: Dock) -> None:
    result = dock("config:set", "K=V", "-a", "shop")
    assert result.stderr == "Setting K and restarting shop... done, v2\n"


def test_config_set_rejects_a_pair_without_equals(dock: Dock, fake: FakeApi) -> None:
    result = dock("config:set", "K", "-a", "shop")
    assert result.exit_code == 2
    assert "K is invalid. Must be in the format KEY=value." in result.stderr
    assert fake.writes() == []


def test_config_set_rejects_a_bad_key(dock: Dock, fake: FakeApi) -> None:
    result = dock("config:set", "1BAD=x", "-a", "shop")
    assert result.exit_code == 2
    assert fake.writes() == []


def test_config_unset_sends_nulls(dock: Dock, fake: FakeApi) -> None:
    result = dock("config:unset", "GREETING", "DATABASE_URL", "-a", "shop")
    assert result.exit_code == 0, result.output
    assert fake.writes() == [
        ("PATCH", "/apps/shop/config-vars", {"GREETING": None, "DATABASE_URL": None})
    ]
    assert result.stderr == "Unsetting GREETING and DATABASE_URL and restarting shop... done, v2\n"
    assert fake.config["shop"] == {}


def test_config_set_failure_shows_bang(dock: Dock, fake: FakeApi) -> None:
    fake.errors[("PATCH", "/apps/shop/config-vars")] = (
        422,
        {"id": "invalid_params", "message": "Config vars are limited to 32 kB"},
    )
    result = dock("config:set", "BIG=x", "-a", "shop")
    assert result.exit_code == 1
    assert result.stderr == (
        "Setting BIG and restarting shop... !\n !    Config vars are limited to 32 kB\n"
    )
