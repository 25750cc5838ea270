"""Protocol conventions: ETags, Range pagination, the rate limit, request ids."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.control.context import Platform
from tests.api.conftest import User


def test_etag_and_if_none_match_give_304(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    first = client.get("/apps/shop", headers=alice.headers)
    etag = first.headers["ETag"]
    again = client.get("/apps/shop", headers={**alice.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    client.patch("/apps/shop", json={"maintenance": True}, headers=alice.headers)
    changed = client.get("/apps/shop", headers={**alice.headers, "If-None-Match": etag})
    assert changed.status_code == 200


def test_range_pages_with_next_range_and_206(client: TestClient, alice: User) -> None:
    for name in ("app-a", "app-b", "app-c"):
        client.post("/apps", json={"name": name}, headers=alice.headers)
    first = client.get("/apps", headers={**alice.headers, "Range": "name ..; max=2"})
    assert first.status_code == 206
    assert [a["name"] for a in first.json()] == ["app-a", "app-b"]
    assert first.headers["Next-Range"] == "name ]app-b..; max=2"
    rest = client.get("/apps", headers={**alice.headers, "Range": first.headers["Next-Range"]})
    assert rest.status_code == 200
    assert [a["name"] for a in rest.json()] == ["app-c"]


def test_releases_page_newest_first(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    for i in range(3):
        client.patch("/apps/shop/config-vars", json={"K": str(i)}, headers=alice.headers)
    page = client.get(
        "/apps/shop/releases", headers={**alice.headers, "Range": "version ..; max=2, order=desc"}
    )
    assert page.status_code == 206
    assert [r["version"] for r in page.json()] == [4, 3]
    rest = client.get(
        "/apps/shop/releases", headers={**alice.headers, "Range": page.headers["Next-Range"]}
    )
    assert [r["version"] for r in rest.json()] == [2, 1]


def test_a_bad_range_is_invalid_params(client: TestClient, alice: User) -> None:
    response = client.get("/apps", headers={**alice.headers, "Range": "colour ..; max=2"})
    assert response.status_code == 422
    assert response.json()["id"] == "invalid_params"


def test_rate_limit_counts_down_and_answers_429(
    client: TestClient, alice: User, platform: Platform, clock: FakeClock
) -> None:
    limiter = client.app.state.dockyard.limiter  # type: ignore[attr-defined]
    limiter.capacity = 3
    limiter.rate = 3 / 3600
    remaining = [
        int(client.get("/account", headers=alice.headers).headers["RateLimit-Remaining"])
        for _ in range(2)
    ]
    assert remaining[1] == remaining[0] - 1
    for _ in range(3):
        last = client.get("/account", headers=alice.headers)
    assert last.status_code == 429
    assert last.json()["id"] == "rate_limit"
    assert int(last.headers["Retry-After"]) > 0
    clock.advance(3600)
    assert client.get("/account", headers=alice.headers).status_code == 200


def test_request_ids_are_echoed_when_valid(client: TestClient, alice: User) -> None:
    mine = "abcdefghij0123456789-+/="
    assert (
        client.get("/account", headers={**alice.headers, "X-Request-Id": mine}).headers[
            "Request-Id"
        ]
        == mine
    )
    generated = client.get("/account", headers={**alice.headers, "X-Request-Id": "short"}).headers[
        "Request-Id"
    ]
    assert generated != "short" and len(generated) == 36


def test_dyno_sizes_are_public(client: TestClient) -> None:
    sizes = {s["name"]: s for s in client.get("/dyno-sizes").json()}
    assert sizes["Standard-2X"]["memory"] == 1.0
    assert client.get("/dyno-sizes/standard-1x").json()["name"] == "Standard-1X"
