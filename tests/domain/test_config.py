from __future__ import annotations

import pytest

from dockyard.domain.config import MAX_CONFIG_BYTES, apply_changes, describe_changes
from dockyard.errors import ConfigVarError


def test_null_unsets_and_strings_set() -> None:
    assert apply_changes({"A": "1", "B": "2"}, {"A": None, "C": "3"}) == {"B": "2", "C": "3"}


@pytest.mark.parametrize("key", ["1ABC", "A-B", "A B", "", "É"])
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigVarError, match="is invalid"):
        apply_changes({}, {key: "x"})


@pytest.mark.parametrize("key", ["HEROKU_APP_NAME", "DOCKYARD_X", "heroku_x"])
def test_reserved_prefixes_are_refused(key: str) -> None:
    with pytest.raises(ConfigVarError, match="reserved prefix"):
        apply_changes({}, {key: "x"})


def test_the_32_kb_budget_counts_keys_and_values() -> None:
    value = "x" * (MAX_CONFIG_BYTES - 1)
    assert apply_changes({}, {"A": value})["A"] == value
    with pytest.raises(ConfigVarError, match="over the limit"):
        apply_changes({}, {"AB": value})


def test_descriptions_name_keys_only() -> None:
    assert describe_changes({"OLD": "v"}, {"NEW": "secret", "OLD": None}) == (
        "Set NEW config var and Remove OLD config var"
    )
    assert describe_changes({}, {"A": "1", "B": "2"}) == "Set A, B config vars"
