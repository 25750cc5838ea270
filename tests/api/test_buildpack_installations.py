"""``/apps/{app}/buildpack-installations``: Heroku's shapes, validation, access."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from dockyard.control.buildpacks import local_buildpacks_dir
from dockyard.control.context import Platform
from tests.api.conftest import User

PATH = "/apps/shop/buildpack-installations"


@pytest.fixture(autouse=True)
def _shop(client: TestClient, alice: User) -> None:
    assert client.post("/apps", json={"name": "shop"}, headers=alice.headers).status_code == 201


def _put(client: TestClient, user: User, *urls: str) -> httpx.Response:
    return client.put(
        PATH, json={"updates": [{"buildpack": u} for u in urls]}, headers=user.headers
    )


def test_a_new_app_has_no_buildpacks(client: TestClient, alice: User) -> None:
    assert client.get(PATH, headers=alice.headers).json() == []


def test_put_replaces_the_list_in_order_with_heroku_shapes(client: TestClient, alice: User) -> None:
    response = client.put(
        PATH,
        json={
            "updates": [
                {
                    "buildpack": "https://buildpack-registry.s3.amazonaws.com/buildpacks/heroku/nodejs.tgz"
                },
                {"buildpack": "https://github.com/acme/buildpack-ffmpeg.git#v2"},
                {"buildpack": "python"},
            ]
        },
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    expected = [
        {"buildpack": {"url": "heroku/nodejs", "name": "heroku/nodejs"}, "ordinal": 0},
        {
            "buildpack": {
                "url": "https://github.com/acme/buildpack-ffmpeg.git#v2",
                "name": "buildpack-ffmpeg",
            },
            "ordinal": 1,
        },
        {"buildpack": {"url": "heroku/python", "name": "heroku/python"}, "ordinal": 2},
    ]
    assert response.json() == expected
    assert client.get(PATH, headers=alice.headers).json() == expected
    assert _put(client, alice, "heroku/static").json() == [
        {"buildpack": {"url": "heroku/static", "name": "heroku/static"}, "ordinal": 0}
    ]
    assert _put(client, alice).json() == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("heroku/ruby", "heroku/ruby is not a known buildpack"),
        ("git://example.com/bp.git", "only http(s) URLs"),
        ("ssh://git@example.com/bp.git", "only http(s) URLs"),
        ("/etc", "operator's buildpack directory"),
        ("file:///etc", "operator's buildpack directory"),
        ("https://example.com/bp.git#$(reboot)", "must name a branch or tag"),
        ("https://", "it has no host"),
        ("", "Give a buildpack name or URL"),
    ],
)
def test_invalid_buildpacks_change_nothing(
    client: TestClient, alice: User, url: str, message: str
) -> None:
    _put(client, alice, "heroku/python")
    response = _put(client, alice, "heroku/nodejs", url)
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert [b["buildpack"]["url"] for b in client.get(PATH, headers=alice.headers).json()] == [
        "heroku/python"
    ]


def test_a_buildpack_twice_is_refused(client: TestClient, alice: User) -> None:
    response = _put(client, alice, "heroku/python", "python")
    assert response.status_code == 422
    assert "listed twice" in response.json()["message"]


def test_local_buildpacks_only_from_the_operator_directory(
    client: TestClient, alice: User, platform: Platform
) -> None:
    root = local_buildpacks_dir(platform.settings)
    (root / "company-bp" / "bin").mkdir(parents=True)
    for ref in (f"{root}/company-bp", f"file://{root}/company-bp"):
        response = _put(client, alice, ref)
        assert response.status_code == 200, response.text
        assert response.json()[0]["buildpack"] == {
            "url": f"{root}/company-bp",
            "name": "company-bp",
        }
    escaping = _put(client, alice, f"{root}/../secrets")
    assert escaping.status_code == 422
    missing = _put(client, alice, f"{root}/absent")
    assert "there is no buildpack" in missing.json()["message"]


def test_strangers_cannot_read_or_change_them(client: TestClient, alice: User, bob: User) -> None:
    assert client.get(PATH, headers=bob.headers).status_code == 404
    assert _put(client, bob, "heroku/python").status_code == 404
    assert client.get(PATH, headers=alice.headers).json() == []


def test_body_without_updates_is_invalid(client: TestClient, alice: User) -> None:
    response = client.put(PATH, json={"buildpacks": []}, headers=alice.headers)
    assert response.status_code == 422
