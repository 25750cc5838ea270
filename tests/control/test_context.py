"""The data directory's layout and permissions."""

from __future__ import annotations

import stat

from dockyard.control.context import Platform, private_dirs
from dockyard.settings import Settings


def test_private_parts_of_the_data_directory_are_closed_to_other_users(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    settings.repos_dir.mkdir(mode=0o755)  # as an older install left it
    platform = Platform.open(settings)
    platform.close()
    for directory in private_dirs(settings):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert stat.S_IMODE((settings.data_dir / "dockyard.db").stat().st_mode) == 0o600
