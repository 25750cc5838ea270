"""``/apps``: Heroku's shapes, status codes and error ids."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.api.conftest import User


def test_create_answers_201_with_heroku_fields(client: TestClient, alice: User) -> None:
    response = client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    assert response.status_code == 201
    app = response.json()
    assert app["name"] == "shop"
    assert app["owner"]["email"] == alice.email
    assert app["web_url"] == "http://shop.dockyard.localhost/"
    assert app["git_url"].endswith("/shop.git")
    assert app["stack"]["name"] == "heroku-24"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", app["created_at"])


def test_create_without_a_name_generates_one(client: TestClient, alice: User) -> None:
    response = client.post("/apps", headers=alice.headers)
    assert response.status_code == 201
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", response.json()["name"])


def test_a_taken_name_is_a_conflict_and_an_invalid_one_is_invalid_params(
    client: TestClient, alice: User, bob: User
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    taken = client.post("/apps", json={"name": "shop"}, headers=bob.headers)
    assert taken.status_code == 409
    assert taken.json() == {"id": "conflict", "message": "Name shop is already taken"}
    invalid = client.post("/apps", json={"name": "Shop!"}, headers=alice.headers)
    assert invalid.status_code == 422
    assert invalid.json()["id"] == "invalid_params"


def test_apps_are_addressable_by_id_or_name(client: TestClient, alice: User) -> None:
    app = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    assert client.get(f"/apps/{app['id']}", headers=alice.headers).json()["name"] == "shop"
    assert client.get("/apps/shop", headers=alice.headers).json()["id"] == app["id"]


def test_strangers_cannot_see_that_an_app_exists(
    client: TestClient, alice: User, bob: User
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    response = client.get("/apps/shop", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["id"] == "not_found"
    assert client.get("/apps", headers=bob.headers).json() == []


def test_rename_and_maintenance(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    renamed = client.patch("/apps/shop", json={"name": "store"}, headers=alice.headers)
    assert renamed.status_code == 200
    assert renamed.json()["web_url"] == "http://store.dockyard.localhost/"
    domains = client.get("/apps/store/domains", headers=alice.headers).json()
    assert [d["hostname"] for d in domains] == ["store.dockyard.localhost"]
    assert client.patch("/apps/store", json={"maintenance": True}, headers=alice.headers).json()[
        "maintenance"
    ]


def test_delete_returns_the_app_and_then_it_is_gone(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    deleted = client.delete("/apps/shop?confirm=shop", headers=alice.headers)
    assert deleted.status_code == 200
    assert deleted.json()["name"] == "shop"
    assert client.get("/apps/shop", headers=alice.headers).status_code == 404


def test_collaborators_may_not_delete(client: TestClient, alice: User, bob: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    added = client.post("/apps/shop/collaborators", json={"user": bob.email}, headers=alice.headers)
    assert added.status_code == 201
    assert added.json()["user"]["email"] == bob.email
    assert client.get("/apps/shop", headers=bob.headers).status_code == 200
    refused = client.delete("/apps/shop?confirm=shop", headers=bob.headers)
    assert refused.status_code == 403
    assert refused.json()["id"] == "forbidden"


def test_no_or_a_wrong_key_is_unauthorized(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/apps", headers=headers)
        assert response.status_code == 401
        assert response.json()["id"] == "unauthorized"


def test_unknown_endpoints_answer_not_found_in_json(client: TestClient, alice: User) -> None:
    response = client.get("/nowhere", headers=alice.headers)
    assert response.status_code == 404
    assert response.json()["id"] == "not_found"


def test_malformed_json_is_bad_request(client: TestClient, alice: User) -> None:
    response = client.post(
        "/apps", content=b"{not json", headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["id"] == "bad_request"
