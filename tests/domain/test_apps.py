from __future__ import annotations

import random

import pytest

from dockyard.domain.apps import APP_NAME_PATTERN, generate_app_name, validate_app_name
from dockyard.errors import InvalidError


@pytest.mark.parametrize("name", ["abc", "my-app-42", "a" * 30, "a1-b"])
def test_heroku_names_are_accepted(name: str) -> None:
    assert validate_app_name(name) == name


@pytest.mark.parametrize(
    "name", ["ab", "a" * 31, "1app", "App", "my_app", "my-app-", "-app", "my app", ""]
)
def test_names_outside_the_rule_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidError, match="3 to 30 characters"):
        validate_app_name(name)


def test_generated_names_follow_the_rule_and_vary() -> None:
    rng = random.Random(7)  # noqa: S311 - a seeded generator makes the test repeatable
    names = {generate_app_name(rng) for _ in range(50)}
    assert len(names) > 45
    assert all(APP_NAME_PATTERN.fullmatch(n) and n.count("-") == 2 for n in names)
