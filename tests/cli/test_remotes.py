from __future__ import annotations

import pytest

from dockyard.cli.remotes import app_from_url

API = "http://localhost:5000"


@pytest.mark.parametrize(
    ("url", "app"),
    [
        ("http://localhost:5000/shop.git", "shop"),
        ("ssh://git@localhost:2222/shop.git", "shop"),
        ("ssh://git@localhost/shop.git", "shop"),
        ("ssh://git@elsewhere:2222/shop.git", None),
        ("ssh://git@localhost:2222/team/shop.git", None),
        ("http://localhost:5001/shop.git", None),
        ("https://github.com/me/shop.git", None),
    ],
)
def test_remotes_on_the_platform_name_their_app(url: str, app: str | None) -> None:
    assert app_from_url(url, API) == app
