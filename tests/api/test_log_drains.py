"""``/apps/{app}/log-drains`` in Heroku's shapes, and log sessions: plain text, Server-Sent Events for the
Heroku CLI, history search, one use per URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from dockyard.control.context import Platform
from dockyard.settings import Settings
from tests.api.conftest import User
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The operator allows drains to loopback here."""
    return make_settings(tmp_path / "data", DOCKYARD_LOGS_ALLOW_PRIVATE_DRAINS="true")


def test_drains_are_added_listed_shown_and_removed(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    url = "syslog+tls://127.0.0.1:6514"
    added = client.post("/apps/shop/log-drains", json={"url": url}, headers=alice.headers)
    assert added.status_code == 201, added.text
    drain = added.json()
    assert set(drain) == {"addon", "app", "created_at", "id", "token", "updated_at", "url"}
    assert drain["token"] == f"d.{drain['id']}"
    assert drain["app"]["name"] == "shop"
    assert drain["addon"] is None
    listed = client.get("/apps/shop/log-drains", headers=alice.headers).json()
    assert [d["url"] for d in listed] == [url]
    shown = client.get(f"/apps/shop/log-drains/{quote(url, safe='')}", headers=alice.headers)
    assert shown.json()["id"] == drain["id"]
    removed = client.delete(f"/apps/shop/log-drains/{drain['token']}", headers=alice.headers)
    assert removed.status_code == 200
    assert client.get("/apps/shop/log-drains", headers=alice.headers).json() == []


def test_bad_drains_are_refused_with_heroku_error_ids(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    bad = client.post("/apps/shop/log-drains", json={"url": "ftp://x"}, headers=alice.headers)
    assert bad.status_code == 422
    assert bad.json()["id"] == "invalid_params"
    for port in range(5):
        client.post(
            "/apps/shop/log-drains",
            json={"url": f"syslog://127.0.0.1:{port + 1}"},
            headers=alice.headers,
        )
    sixth = client.post(
        "/apps/shop/log-drains", json={"url": "syslog://127.0.0.1:99"}, headers=alice.headers
    )
    assert sixth.status_code == 422
    missing = client.delete("/apps/shop/log-drains/d.nope", headers=alice.headers)
    assert missing.status_code == 404


def test_other_accounts_do_not_see_drains(client: TestClient, alice: User, bob: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    assert client.get("/apps/shop/log-drains", headers=bob.headers).status_code == 404


def _session(client: TestClient, user: User, **body: object) -> str:
    response = client.post("/apps/shop/log-sessions", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["logplex_url"]).split("5000", 1)[1]


def test_a_log_session_streams_plain_text_or_server_sent_events(
    client: TestClient, alice: User, platform: Platform
) -> None:
    app = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    platform.log(app["id"], "app", "web.1", "hello from the app")
    text = client.get(_session(client, alice, lines=10)).text
    assert "app[web.1]: hello from the app\n" in text
    events = client.get(_session(client, alice, lines=10), headers={"Accept": "text/event-stream"})
    assert events.headers["content-type"].startswith("text/event-stream")
    data = [x[len("data: ") :] for x in events.text.split("\n") if x.startswith("data: ")]
    assert any(x.endswith("app[web.1]: hello from the app") for x in data)
    assert events.text.endswith("\n\n")


def test_a_session_searches_the_history_by_time_and_text(
    client: TestClient, alice: User, platform: Platform
) -> None:
    app = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    for n in range(5):
        platform.log(app["id"], "app", "web.1", f"order {n} placed")
    platform.log(app["id"], "app", "web.1", "something else")
    found = client.get(_session(client, alice, since="1h", grep="placed")).text.splitlines()
    assert [x.split(": ", 1)[1] for x in found] == [f"order {n} placed" for n in range(5)]
    none = client.get(_session(client, alice, until="2000-01-01T00:00:00Z")).text
    assert none == ""
    bad = client.post("/apps/shop/log-sessions", json={"since": "yesterday"}, headers=alice.headers)
    assert bad.status_code == 422
