"""PlatformClient: Heroku v3 paths and bodies on the wire, typed results, pagination, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dockyard.client.http import ApiClient
from dockyard.client.platform import FormationUpdate, PlatformClient
from dockyard.errors import ApiError, ConflictError, InvalidError, NotFoundError

Handler = Callable[[httpx.Request], httpx.Response]


class Wire:
    """Answers every request with the next prepared response and records what was sent."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.sent: list[tuple[str, str, Any, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body, request.headers.get("Range")))
        return self.responses.pop(0)

    def client(self) -> PlatformClient:
        return PlatformClient(
            ApiClient("http://api.test", "k", transport=httpx.MockTransport(self))
        )


def ok(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


APP = {
    "id": "a1",
    "name": "shop",
    "owner": {"email": "dev@example.com", "id": "u1"},
    "web_url": "http://shop.example/",
    "git_url": "http://api.test/shop.git",
    "maintenance": False,
    "released_at": "2026-01-02T10:00:00Z",
    "created_at": "2026-01-01T10:00:00Z",
    "updated_at": "2026-01-02T10:00:00Z",
    "stack": {"id": "s1", "name": "heroku-24"},
}
RELEASE = {
    "id": "r7",
    "version": 7,
    "description": "Set FOO config vars",
    "status": "succeeded",
    "current": True,
    "created_at": "2026-01-02T10:00:00Z",
    "user": {"email": "dev@example.com", "id": "u1"},
    "slug": {"id": "slug-1"},
}
DYNO = {
    "id": "d1",
    "name": "web.1",
    "type": "web",
    "state": "up",
    "command": "python app.py",
    "size": "Standard-1X",
    "release": {"version": 7},
    "created_at": "2026-01-02T10:00:00Z",
    "updated_at": "2026-01-02T10:01:00Z",
}


def test_app_is_parsed_into_typed_fields() -> None:
    wire = Wire(ok(APP))
    app = wire.client().app("shop")
    assert wire.sent == [("GET", "/apps/shop", None, None)]
    assert (app.name, app.owner_email, app.git_url, app.stack) == (
        "shop",
        "dev@example.com",
        "http://api.test/shop.git",
        "heroku-24",
    )
    assert app.released_at == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert app.raw == APP


def test_app_names_cannot_escape_their_path_segment() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return ok(APP)

    api = ApiClient("http://api.test", "k", transport=httpx.MockTransport(handler))
    PlatformClient(api).app("../account")
    assert seen == [b"/apps/..%2Faccount"]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.create_app("shop"), ("POST", "/apps", {"name": "shop"})),
        (lambda c: c.create_app(), ("POST", "/apps", {})),
        (lambda c: c.rename_app("shop", "store"), ("PATCH", "/apps/shop", {"name": "store"})),
        (lambda c: c.set_maintenance("shop", True), ("PATCH", "/apps/shop", {"maintenance": True})),
        (lambda c: c.delete_app("shop"), ("DELETE", "/apps/shop", None)),
    ],
)
def test_app_writes(call: Callable[[PlatformClient], Any], expected: tuple[str, str, Any]) -> None:
    wire = Wire(ok(APP))
    assert call(wire.client()).name == "shop"
    assert wire.sent[0][:3] == expected


def test_account() -> None:
    wire = Wire(ok({"id": "u1", "email": "dev@example.com", "name": None}))
    account = wire.client().account()
    assert (account.id, account.email, account.name) == ("u1", "dev@example.com", None)


def test_config_vars_read_and_patch_with_null_unsets() -> None:
    wire = Wire(ok({"A": "1"}), ok({"B": "2"}))
    client = wire.client()
    assert client.config_vars("shop") == {"A": "1"}
    assert client.update_config_vars("shop", {"A": None, "B": "2"}) == {"B": "2"}
    assert wire.sent[1][:3] == ("PATCH", "/apps/shop/config-vars", {"A": None, "B": "2"})


def test_releases_are_sorted_oldest_first_and_typed() -> None:
    older = dict(RELEASE, id="r6", version=6, current=False)
    wire = Wire(ok([RELEASE, older]))
    releases = wire.client().releases("shop")
    assert [r.version for r in releases] == [6, 7]
    latest = releases[-1]
    assert (latest.current, latest.user_email, latest.slug_id) == (
        True,
        "dev@example.com",
        "slug-1",
    )


def test_release_by_version_and_rollback() -> None:
    wire = Wire(ok(RELEASE), ok(dict(RELEASE, id="r8", version=8), 201))
    client = wire.client()
    assert client.release("shop", 7).id == "r7"
    assert client.rollback("shop", "r6").version == 8
    assert [s[:3] for s in wire.sent] == [
        ("GET", "/apps/shop/releases/7", None),
        ("POST", "/apps/shop/releases", {"release": "r6"}),
    ]


def test_pagination_follows_next_range_until_200() -> None:
    wire = Wire(
        ok([RELEASE], 206, **{"Next-Range": "version ]7..; max=1"}),
        ok([dict(RELEASE, id="r8", version=8)], 206, **{"Next-Range": "version ]8..; max=1"}),
        ok([dict(RELEASE, id="r9", version=9)]),
    )
    assert [r.version for r in wire.client().releases("shop")] == [7, 8, 9]
    assert [s[3] for s in wire.sent] == [None, "version ]7..; max=1", "version ]8..; max=1"]


def test_pagination_206_without_next_range_ends() -> None:
    wire = Wire(ok([APP], 206))
    assert len(wire.client().apps()) == 1


def test_pagination_loop_is_detected() -> None:
    page = {"Next-Range": "id ]a1..; max=1"}
    wire = Wire(ok([APP], 206, **page), ok([APP], 206, **page), ok([APP]))
    with pytest.raises(ApiError, match="same Next-Range"):
        wire.client().apps()


def test_formation_and_scale() -> None:
    form = {"id": "f1", "type": "web", "quantity": 2, "size": "Standard-2X", "command": "x"}
    wire = Wire(ok([form]), ok([form]))
    client = wire.client()
    assert client.formation("shop")[0].quantity == 2
    result = client.scale(
        "shop", [FormationUpdate("web", 2, "standard-2x"), FormationUpdate("worker", 0)]
    )
    assert result[0].size == "Standard-2X"
    assert wire.sent[1][:3] == (
        "PATCH",
        "/apps/shop/formation",
        {
            "updates": [
                {"type": "web", "quantity": 2, "size": "standard-2x"},
                {"type": "worker", "quantity": 0},
            ]
        },
    )


def test_dynos_and_restarts() -> None:
    wire = Wire(ok([DYNO]), ok({}, 202), ok({}, 202))
    client = wire.client()
    dyno = client.dynos("shop")[0]
    assert (dyno.name, dyno.type, dyno.state, dyno.release_version) == ("web.1", "web", "up", 7)
    client.restart_all("shop")
    client.restart("shop", "web.1")
    assert [s[:2] for s in wire.sent[1:]] == [
        ("DELETE", "/apps/shop/dynos"),
        ("DELETE", "/apps/shop/dynos/web.1"),
    ]


def test_domains() -> None:
    domain = {"id": "d", "hostname": "www.example.com", "kind": "custom", "cname": "shop.example"}
    wire = Wire(ok([domain]), ok(domain, 201), ok(domain))
    client = wire.client()
    assert client.domains("shop")[0].cname == "shop.example"
    client.add_domain("shop", "www.example.com")
    client.remove_domain("shop", "www.example.com")
    assert [s[:3] for s in wire.sent[1:]] == [
        ("POST", "/apps/shop/domains", {"hostname": "www.example.com", "sni_endpoint": None}),
        ("DELETE", "/apps/shop/domains/www.example.com", None),
    ]


def test_builds() -> None:
    build = {
        "id": "b1",
        "status": "succeeded",
        "source_blob": {"version": "abc123"},
        "release": {"id": "r7"},
        "user": {"email": "dev@example.com"},
    }
    wire = Wire(ok([build]))
    found = wire.client().builds("shop")[0]
    assert (found.status, found.source_version, found.release_id) == ("succeeded", "abc123", "r7")


def test_log_session_then_stream() -> None:
    wire = Wire(
        ok({"logplex_url": "http://api.test/log-sessions/x"}, 201),
        httpx.Response(200, text="line one\nline two\n"),
    )
    client = wire.client()
    url = client.create_log_session("shop", lines=10, tail=True, source="app", dyno="web.1")
    assert list(client.log_lines(url)) == ["line one", "line two"]
    assert [s[:3] for s in wire.sent] == [
        (
            "POST",
            "/apps/shop/log-sessions",
            {"tail": True, "lines": 10, "source": "app", "dyno": "web.1"},
        ),
        ("GET", "/log-sessions/x", None),
    ]


def test_log_session_without_url_is_an_api_error() -> None:
    wire = Wire(ok({}, 201))
    with pytest.raises(ApiError, match="logplex_url"):
        wire.client().create_log_session("shop")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"id": "not_found", "message": "Couldn't find that app."}, NotFoundError),
        (422, {"id": "invalid_params", "message": "Name is invalid"}, InvalidError),
        (409, {"id": "conflict", "message": "Name is already taken"}, ConflictError),
    ],
)
def test_errors_are_mapped(status: int, body: dict[str, str], error: type[Exception]) -> None:
    wire = Wire(ok(body, status))
    with pytest.raises(error, match=body["message"]):
        wire.client().app("shop")


def test_a_list_that_is_not_a_list_is_an_api_error() -> None:
    wire = Wire(ok({"not": "a list"}))
    with pytest.raises(ApiError):
        wire.client().apps()


def test_a_body_that_is_not_json_is_an_api_error() -> None:
    wire = Wire(httpx.Response(200, text="<html>"))
    with pytest.raises(ApiError, match="not JSON"):
        wire.client().app("shop")
