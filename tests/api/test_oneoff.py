"""``POST /apps/{app}/dynos`` (one-off dynos) and ``POST /apps/{app}/dynos/{dyno}/actions/stop``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from dockyard.control.context import Platform
from dockyard.domain.dataplane import DynoReport, dyno_of_attach_secret
from dockyard.rendezvous.tls import ensure_certificate, fingerprint
from tests.api.conftest import User, internal_headers
from tests.api.test_releases import deploy_slug


@pytest.fixture
def shop(client: TestClient, alice: User, platform: Platform) -> dict[str, Any]:
    app: dict[str, Any] = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    client.patch("/apps/shop/config-vars", json={"GREETING": "hi"}, headers=alice.headers)
    deploy_slug(platform, "shop", {"web": "serve $PORT"})  # v3
    return app


def desired(client: TestClient) -> list[dict[str, Any]]:
    answer = client.get("/internal/v1/hosts/h1/desired-dynos", headers=internal_headers())
    dynos: list[dict[str, Any]] = answer.json()["dynos"]
    return [d for d in dynos if d["kind"] == "one-off"]


def test_a_detached_run_is_a_run_dyno_in_the_current_release(
    client: TestClient, alice: User, shop: dict[str, Any], platform: Platform
) -> None:
    # what `heroku run:detached` sends
    body = {"command": "rake db:migrate", "attach": False, "env": {"VERBOSE": "1"}}
    response = client.post("/apps/shop/dynos", json=body, headers=alice.headers)
    assert response.status_code == 201
    dyno = response.json()
    assert dyno["name"].startswith("run.") and len(dyno["name"]) == 8
    assert (dyno["command"], dyno["type"], dyno["state"], dyno["attach_url"]) == (
        "rake db:migrate",
        "run",
        "starting",
        None,
    )
    assert (dyno["release"]["version"], dyno["size"], dyno["app"]["name"]) == (
        3,
        "Standard-1X",
        "shop",
    )
    (wanted,) = desired(client)
    assert (wanted["dyno_id"], wanted["process_type"], f"run.{wanted['index']}") == (
        dyno["id"],
        "run",
        dyno["name"],
    )
    assert wanted["env"] == {"GREETING": "hi", "VERBOSE": "1"}
    assert (wanted["release_version"], wanted["time_to_live"], wanted["attach"]) == (
        3,
        86400,
        False,
    )
    log = platform.logs.tail(shop["id"], 10)
    assert any(
        line.message == f"Starting process with command `rake db:migrate` by user {alice.email}"
        for line in log
    )


def test_an_attached_run_gets_an_attach_url_with_a_secret_and_the_certificate_pin(
    client: TestClient, alice: User, shop: dict[str, Any], platform: Platform
) -> None:
    settings = platform.settings
    ensure_certificate(settings.rendezvous_cert_file, settings.rendezvous_tls_key_file, "localhost")
    # what `heroku run bash` sends from a terminal (COLUMNS and LINES are numbers, TERM may be unset)
    body = {
        "command": "bash",
        "attach": True,
        "env": {"TERM": "xterm-256color", "COLUMNS": 120, "LINES": 40},
        "force_no_tty": None,
    }
    dyno = client.post("/apps/shop/dynos", json=body, headers=alice.headers).json()
    url = dyno["attach_url"]
    prefix = f"rendezvous://localhost:{settings.rendezvous.port}/"
    assert url.startswith(prefix)
    secret, _, query = url.removeprefix(prefix).partition("?")
    key = settings.rendezvous_key_file.read_text().strip()
    assert dyno_of_attach_secret(key, secret) == dyno["id"]
    assert query == f"sha256={fingerprint(settings.rendezvous_cert_file.read_text())}"
    (wanted,) = desired(client)
    assert (wanted["attach"], wanted["tty"]) == (True, True)
    assert wanted["env"]["COLUMNS"] == "120"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "command"),
        ({"command": "  "}, "command"),
        ({"command": "x", "time_to_live": 86401}, "time_to_live"),
        ({"command": "x", "time_to_live": 0}, "time_to_live"),
        ({"command": "x", "size": "huge-9x"}, "size"),
        ({"command": "x", "env": {"BAD-NAME": "1"}}, "env"),
        ({"command": "x", "env": ["A=1"]}, "env"),
        ({"command": "x", "attach": "yes"}, "attach"),
        ({"command": "x", "type": "no spaces"}, "type"),
    ],
)
def test_bad_run_requests_are_refused_and_change_nothing(
    client: TestClient, alice: User, shop: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    response = client.post("/apps/shop/dynos", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["id"] == "invalid_params"
    assert field in response.json()["message"].lower()  # the message names what to fix
    assert desired(client) == []


def test_an_app_without_a_release_cannot_run_anything(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "empty"}, headers=alice.headers)
    response = client.post("/apps/empty/dynos", json={"command": "bash"}, headers=alice.headers)
    assert response.status_code == 409
    assert "deploy it first" in response.json()["message"]


def test_only_the_owner_and_collaborators_may_run(
    client: TestClient, alice: User, bob: User, shop: dict[str, Any]
) -> None:
    response = client.post("/apps/shop/dynos", json={"command": "bash"}, headers=bob.headers)
    assert response.status_code in (403, 404)
    assert desired(client) == []


def test_stop_ends_a_one_off_dyno_and_a_reported_end_forgets_it(
    client: TestClient, alice: User, shop: dict[str, Any]
) -> None:
    first = client.post("/apps/shop/dynos", json={"command": "sleep 100"}, headers=alice.headers)
    second = client.post("/apps/shop/dynos", json={"command": "echo hi"}, headers=alice.headers)
    stopped = client.post(
        f"/apps/shop/dynos/{first.json()['name']}/actions/stop", headers=alice.headers
    )
    assert stopped.status_code == 202
    assert [d["dyno_id"] for d in desired(client)] == [second.json()["id"]]
    report = DynoReport(
        id=second.json()["id"],
        app_id=shop["id"],
        name=second.json()["name"],
        process_type="run",
        release_version=3,
        state="down",
        command="echo hi",
        size="standard-1x",
        started_at="2026-01-01T00:00:00+00:00",
        kind="one-off",
    )
    client.put(
        "/internal/v1/hosts/h1/dynos",
        json={"dynos": [report.to_json()]},
        headers=internal_headers(),
    )
    assert desired(client) == []


def test_stopping_a_formation_dyno_restarts_it(
    client: TestClient, alice: User, shop: dict[str, Any]
) -> None:
    before = client.get("/internal/v1/hosts/h1/desired-dynos", headers=internal_headers()).json()
    response = client.post("/apps/shop/dynos/web.1/actions/stop", headers=alice.headers)
    assert response.status_code == 202
    after = client.get("/internal/v1/hosts/h1/desired-dynos", headers=internal_headers()).json()
    assert before["dynos"][0]["generation"] != after["dynos"][0]["generation"]


def test_ps_shows_the_next_retry_of_a_crashed_dyno(
    client: TestClient, alice: User, shop: dict[str, Any]
) -> None:
    report = DynoReport(
        id="d1",
        app_id=shop["id"],
        name="web.1",
        process_type="web",
        release_version=3,
        state="crashed",
        command="serve $PORT",
        size="standard-1x",
        started_at="2026-01-01T00:00:00+00:00",
        next_retry_at="2026-01-01T00:20:01+00:00",
    )
    client.put(
        "/internal/v1/hosts/h1/dynos",
        json={"dynos": [report.to_json()]},
        headers=internal_headers(),
    )
    (dyno,) = client.get("/apps/shop/dynos", headers=alice.headers).json()
    assert (dyno["state"], dyno["next_retry_at"]) == ("crashed", "2026-01-01T00:20:01Z")
