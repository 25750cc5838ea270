"""``/internal/v1``: the long polls of the data plane, and the pushes the pre-receive hook hands over."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from dockyard.api.app import create_app
from dockyard.control import dataplane
from dockyard.control.accounts import create_user
from dockyard.control.context import STACK, Platform
from tests.api.conftest import INTERNAL_TOKEN, internal_headers

ROUTES = "/internal/v1/routes"
DESIRED = "/internal/v1/hosts/h1/desired-dynos"


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _get(client: TestClient, path: str, etag: str | None = None) -> httpx.Response:
    headers = internal_headers()
    if etag is not None:
        headers["If-None-Match"] = etag
    return client.get(path, headers=headers)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.005)


def _poll_in_background(
    pool: ThreadPoolExecutor,
    client: TestClient,
    platform: Platform,
    path: str,
    etag: str,
    wait: float = 20.0,
) -> Future[httpx.Response]:
    """A long poll started in a thread; returns once the API holds it."""
    changes = dataplane.changes(platform)
    held_before = changes.waiting
    answer = pool.submit(_get, client, f"{path}?wait={wait:g}", etag)
    _until(lambda: changes.waiting > held_before or answer.done(), "the API holds the poll")
    return answer


def _create_app(platform: Platform, name: str) -> None:
    """A new app (a new route), committed straight to the store without notifying anyone, as
    another process would."""
    owner = create_user(platform, f"{name}@example.com").account
    with platform.store.transaction() as tx:
        tx.create_app(name, owner.id, STACK)


def test_a_poll_with_an_old_etag_is_answered_at_once(client: TestClient) -> None:
    answer = _get(client, f"{ROUTES}?wait=20", '"outdated"')

    assert answer.status_code == 200
    assert answer.json() == {"routes": []}
    assert answer.headers["ETag"] != '"outdated"'


def test_a_poll_with_the_current_etag_and_no_wait_is_a_304_at_once(client: TestClient) -> None:
    etag = _get(client, DESIRED).headers["ETag"]

    answer = _get(client, DESIRED, etag)

    assert answer.status_code == 304
    assert answer.headers["ETag"] == etag


def test_an_unchanged_table_is_a_304_once_the_wait_has_passed(client: TestClient) -> None:
    etag = _get(client, ROUTES).headers["ETag"]

    answer = _get(client, f"{ROUTES}?wait=0.2", etag)

    assert answer.status_code == 304
    assert answer.headers["ETag"] == etag


def test_a_held_poll_is_answered_when_another_process_changes_the_store(
    client: TestClient, platform: Platform, pool: ThreadPoolExecutor
) -> None:
    etag = _get(client, ROUTES).headers["ETag"]
    answer = _poll_in_background(pool, client, platform, ROUTES, etag)

    _create_app(platform, "fresh")

    response = answer.result(timeout=10)  # long before the 20 s the poll may be held
    assert response.status_code == 200
    assert [r["app_name"] for r in response.json()["routes"]] == ["fresh"]
    assert response.headers["ETag"] != etag


def test_a_held_poll_is_answered_when_a_dyno_report_changes_the_routes(
    client: TestClient, platform: Platform, pool: ThreadPoolExecutor
) -> None:
    _create_app(platform, "shop")
    with platform.store.read() as tx:
        app_id = tx.get_app("shop").id
    first = _get(client, ROUTES)
    assert first.json()["routes"][0]["backends"] == []
    answer = _poll_in_background(pool, client, platform, ROUTES, first.headers["ETag"])

    report: dict[str, Any] = {
        "id": "d1",
        "app_id": app_id,
        "name": "web.1",
        "process_type": "web",
        "release_version": 1,
        "state": "up",
        "command": "gunicorn app:app",
        "size": "basic",
        "started_at": "2026-01-01T00:00:00+00:00",
        "address": "127.0.0.1:4001",
    }
    put = client.put(
        "/internal/v1/hosts/h1/dynos", json={"dynos": [report]}, headers=internal_headers()
    )
    assert put.status_code == 200

    response = answer.result(timeout=10)
    assert response.status_code == 200
    assert response.json()["routes"][0]["backends"] == [
        {"dyno": "web.1", "address": "127.0.0.1:4001"}
    ]


def test_a_change_that_leaves_the_answer_alone_keeps_the_poll_held(
    client: TestClient, platform: Platform, pool: ThreadPoolExecutor
) -> None:
    etag = _get(client, DESIRED).headers["ETag"]
    changes = dataplane.changes(platform)
    answer = _poll_in_background(pool, client, platform, f"{DESIRED}", etag, wait=1.0)
    generation = changes.generation

    _create_app(platform, "unreleased")  # no release yet: it wants no dynos
    _until(lambda: changes.generation > generation, "the change is noticed")

    response = answer.result(timeout=10)
    assert response.status_code == 304, "the poll was held until its wait had passed"
    assert response.headers["ETag"] == etag


@pytest.fixture
def served(platform: Platform) -> Iterator[int]:
    """The API of ``platform`` under uvicorn on an ephemeral loopback port (real connections)."""
    app = create_app(platform, internal_token=INTERNAL_TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _until(lambda: server.started, "the API listens")
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_a_held_poll_whose_caller_goes_away_is_let_go(platform: Platform, served: int) -> None:
    """So that a stopping agent or router does not keep the API from stopping."""
    changes = dataplane.changes(platform)
    with socket.create_connection(("127.0.0.1", served)) as conn:
        conn.sendall(
            f"GET {ROUTES}?wait=20 HTTP/1.1\r\nHost: api\r\nIf-None-Match: {_routes_etag(served)}"
            f"\r\nAuthorization: Bearer {INTERNAL_TOKEN}\r\n\r\n".encode()
        )
        _until(lambda: changes.waiting == 1, "the API holds the poll")
    _until(lambda: changes.waiting == 0, "the API lets the poll go")


def _routes_etag(port: int) -> str:
    answer = httpx.get(f"http://127.0.0.1:{port}{ROUTES}", headers=internal_headers())
    return answer.headers["ETag"]


@pytest.mark.parametrize("wait", ["soon", "-1", "nan"])
def test_a_wait_that_is_not_a_number_of_seconds_is_refused(client: TestClient, wait: str) -> None:
    answer = _get(client, f"{ROUTES}?wait={wait}", '"x"')

    assert answer.status_code == 422
    assert "is not a number of seconds" in answer.json()["message"]


def test_the_views_need_the_internal_token(client: TestClient) -> None:
    answer = client.get(f"{ROUTES}?wait=1", headers={"Authorization": "Bearer nope"})

    assert answer.status_code == 401


# -- pushes ------------------------------------------------------------------------------------------


def _push(client: TestClient, platform: Platform, **changes: Any) -> httpx.Response:
    app_id = "0b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10"
    repo = platform.settings.repos_dir / f"{app_id}.git"
    payload: dict[str, Any] = {
        "app_id": app_id,
        "account_id": "9b7c6a2e-8d55-4f4e-9a39-1d3c1c1f9a10",
        "refs": [["0" * 40, "c" * 40, "refs/heads/main"]],
        "repo": str(repo),
        "git_env": {"GIT_QUARANTINE_PATH": str(repo / "objects" / "incoming-x")},
    }
    payload.update(changes)
    return client.post("/internal/v1/pushes", json=payload, headers=internal_headers())


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_push_streams_the_builds_output_and_its_outcome(
    client: TestClient, platform: Platform
) -> None:
    answer = _push(client, platform)

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    lines = _lines(answer)
    assert lines[-1] == {"ok": False}
    assert lines[0]["line"].startswith(" !     Account ")  # nobody with that id


def test_a_push_of_another_repository_is_refused(client: TestClient, platform: Platform) -> None:
    answer = _push(client, platform, repo=str(platform.settings.repos_dir / "other.git"))

    assert answer.status_code == 422
    assert "is not the repository of app" in answer.json()["message"]


def test_a_push_whose_objects_are_outside_its_repository_is_refused(
    client: TestClient, platform: Platform
) -> None:
    answer = _push(client, platform, git_env={"GIT_OBJECT_DIRECTORY": "/etc"})

    assert answer.status_code == 422
    assert "GIT_OBJECT_DIRECTORY: /etc is not inside" in answer.json()["message"]


def test_a_malformed_push_is_refused(client: TestClient, platform: Platform) -> None:
    answer = _push(client, platform, refs="main")

    assert answer.status_code == 422
    assert "malformed push" in answer.json()["message"]
