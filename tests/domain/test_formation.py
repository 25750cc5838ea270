from __future__ import annotations

import pytest

from dockyard.domain.formation import check_total, validate_quantity, validate_size
from dockyard.errors import InvalidError


def test_sizes_match_case_insensitively() -> None:
    assert validate_size("Standard-2X") == "standard-2x"
    with pytest.raises(InvalidError, match="does not exist"):
        validate_size("huge")


@pytest.mark.parametrize("quantity", [-1, 101, "2", 1.5, True])
def test_quantities_must_be_whole_numbers_in_range(quantity: object) -> None:
    with pytest.raises(InvalidError):
        validate_quantity(quantity)


def test_an_app_runs_at_most_100_dynos() -> None:
    check_total({"web": 50, "worker": 50})
    with pytest.raises(InvalidError, match="at most 100"):
        check_total({"web": 60, "worker": 41})
