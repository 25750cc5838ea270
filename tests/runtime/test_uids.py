"""Per-app host uid ranges: stable, distinct, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import DynoError
from dockyard.runtime.uids import RANGE_SIZE, UidRanges


def test_each_app_gets_its_own_range_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "uid-slots.json"
    ranges = UidRanges(path, 1 << 20, 8)
    first = ranges.host_base("app-a")
    second = ranges.host_base("app-b")
    assert first == 1 << 20
    assert second == first + RANGE_SIZE
    assert UidRanges(path, 1 << 20, 8).host_base("app-a") == first  # kept on disk


def test_running_out_of_ranges_says_which_setting_to_raise(tmp_path: Path) -> None:
    ranges = UidRanges(tmp_path / "uid-slots.json", 1 << 20, 2)
    ranges.slot("a")
    ranges.slot("b")
    with pytest.raises(DynoError, match=r"runtime\.uid_slots"):
        ranges.slot("c")


@pytest.mark.parametrize(("base", "slots"), [(0, 1), (1000, 1), (1 << 31, 1 << 15)])
def test_ranges_must_stay_away_from_host_accounts_and_fit_in_32_bits(
    tmp_path: Path, base: int, slots: int
) -> None:
    with pytest.raises(DynoError, match="does not fit"):
        UidRanges(tmp_path / "uid-slots.json", base, slots)
