"""Config vars, releases, rollback, formation, dynos and the data-plane view."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dockyard.control.context import Platform
from dockyard.control.releases import append_release
from dockyard.domain.dataplane import DynoReport
from tests.api.conftest import User, internal_headers


def deploy_slug(
    platform: Platform, app_name: str, process_types: dict[str, str], digest: str = "a" * 64
) -> str:
    """Release a slug record directly (the git push path has its own tests)."""
    with platform.store.transaction() as tx:
        app = tx.get_app(app_name)
        slug = tx.create_slug(
            app.id,
            digest=digest,
            size=10,
            process_types=process_types,
            commit="abc1234def",
            stack="heroku-24",
        )
        append_release(
            tx,
            app,
            slug_id=slug.id,
            config=tx.get_config(app.id),
            description="Deploy abc1234d",
            user=None,
        )
    return slug.id


def test_a_new_app_has_release_v1(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    (release,) = client.get("/apps/shop/releases", headers=alice.headers).json()
    assert (release["version"], release["description"], release["current"]) == (
        1,
        "Initial release",
        True,
    )
    assert release["user"]["email"] == alice.email


def test_config_changes_make_releases_and_null_unsets(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    assert client.patch(
        "/apps/shop/config-vars", json={"A": "1", "B": "2"}, headers=alice.headers
    ).json() == {
        "A": "1",
        "B": "2",
    }
    assert client.patch(
        "/apps/shop/config-vars", json={"A": None}, headers=alice.headers
    ).json() == {"B": "2"}
    releases = client.get("/apps/shop/releases", headers=alice.headers).json()
    assert [r["description"] for r in releases] == [
        "Initial release",
        "Set A, B config vars",
        "Remove A config var",
    ]
    assert client.get("/apps/shop/releases/2/config-vars", headers=alice.headers).json() == {
        "A": "1",
        "B": "2",
    }


def test_bad_config_changes_nothing(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    for body in ({"HEROKU_X": "1"}, {"1A": "x"}, {"BIG": "x" * 40000}):
        response = client.patch("/apps/shop/config-vars", json=body, headers=alice.headers)
        assert response.status_code == 422, body
        assert response.json()["id"] == "invalid_params"
    assert client.get("/apps/shop/config-vars", headers=alice.headers).json() == {}
    assert len(client.get("/apps/shop/releases", headers=alice.headers).json()) == 1


def test_config_values_never_reach_the_log(
    client: TestClient, alice: User, platform: Platform
) -> None:
    app = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    client.patch("/apps/shop/config-vars", json={"SECRET": "hunter2-value"}, headers=alice.headers)
    text = "\n".join(line.format() for line in platform.logs.tail(app["id"], 100))
    assert "Set SECRET config var by alice@example.com" in text
    assert "hunter2-value" not in text


def test_rollback_copies_slug_and_config_into_a_new_release(
    client: TestClient, alice: User, platform: Platform
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    client.patch("/apps/shop/config-vars", json={"MODE": "old"}, headers=alice.headers)  # v2
    slug_id = deploy_slug(platform, "shop", {"web": "serve"})  # v3
    client.patch("/apps/shop/config-vars", json={"MODE": "new"}, headers=alice.headers)  # v4
    response = client.post("/apps/shop/releases", json={"release": "3"}, headers=alice.headers)
    assert response.status_code == 201
    rollback = response.json()
    assert (rollback["version"], rollback["description"]) == (5, "Rollback to v3")
    assert rollback["slug"] == {"id": slug_id}
    assert client.get("/apps/shop/config-vars", headers=alice.headers).json() == {"MODE": "old"}


def test_formation_appears_with_the_first_slug_and_scales(
    client: TestClient, alice: User, platform: Platform
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    assert client.get("/apps/shop/formation", headers=alice.headers).json() == []
    deploy_slug(platform, "shop", {"web": "serve $PORT", "worker": "work"})
    formation = {
        f["type"]: f for f in client.get("/apps/shop/formation", headers=alice.headers).json()
    }
    assert (formation["web"]["quantity"], formation["worker"]["quantity"]) == (1, 0)
    assert formation["web"]["command"] == "serve $PORT"
    assert formation["web"]["size"] == "Standard-1X"
    batch = {
        "updates": [
            {"type": "web", "quantity": 2},
            {"type": "worker", "quantity": 1, "size": "standard-2x"},
        ]
    }
    updated = client.patch("/apps/shop/formation", json=batch, headers=alice.headers)
    assert updated.status_code == 200
    assert {f["type"]: (f["quantity"], f["size"]) for f in updated.json()} == {
        "web": (2, "Standard-1X"),
        "worker": (1, "Standard-2X"),
    }
    one = client.patch("/apps/shop/formation/web", json={"quantity": 3}, headers=alice.headers)
    assert one.json()["quantity"] == 3


def test_scaling_an_unknown_type_or_too_far_changes_nothing(
    client: TestClient, alice: User, platform: Platform
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    deploy_slug(platform, "shop", {"web": "serve"})
    bad = client.patch(
        "/apps/shop/formation",
        json={"updates": [{"type": "web", "quantity": 2}, {"type": "clock", "quantity": 1}]},
        headers=alice.headers,
    )
    assert bad.status_code == 404
    assert "clock" in bad.json()["message"]
    too_many = client.patch(
        "/apps/shop/formation/web", json={"quantity": 101}, headers=alice.headers
    )
    assert too_many.status_code == 422
    bad_size = client.patch(
        "/apps/shop/formation/web", json={"size": "giant"}, headers=alice.headers
    )
    assert bad_size.status_code == 422
    assert client.get("/apps/shop/formation/web", headers=alice.headers).json()["quantity"] == 1


def test_the_data_plane_sees_desired_dynos_and_routes(
    client: TestClient, alice: User, platform: Platform
) -> None:
    app = client.post("/apps", json={"name": "shop"}, headers=alice.headers).json()
    client.patch("/apps/shop/config-vars", json={"GREETING": "hi"}, headers=alice.headers)
    deploy_slug(platform, "shop", {"web": "serve $PORT"})
    client.patch("/apps/shop/formation/web", json={"quantity": 2}, headers=alice.headers)
    assert client.get("/internal/v1/routes").status_code == 401
    desired = client.get("/internal/v1/hosts/h1/desired-dynos", headers=internal_headers())
    dynos = desired.json()["dynos"]
    assert [(d["process_type"], d["index"], d["env"]) for d in dynos] == [
        ("web", 1, {"GREETING": "hi"}),
        ("web", 2, {"GREETING": "hi"}),
    ]
    unchanged = client.get(
        "/internal/v1/hosts/h1/desired-dynos",
        headers={**internal_headers(), "If-None-Match": desired.headers["ETag"]},
    )
    assert unchanged.status_code == 304
    report = DynoReport(
        id="d1",
        app_id=app["id"],
        name="web.1",
        process_type="web",
        release_version=3,
        state="up",
        command="serve $PORT",
        size="standard-1x",
        started_at="2026-01-01T00:00:00+00:00",
        address="127.0.0.1:4001",
    )
    assert (
        client.put(
            "/internal/v1/hosts/h1/dynos",
            json={"dynos": [report.to_json()]},
            headers=internal_headers(),
        ).status_code
        == 200
    )
    (route,) = client.get("/internal/v1/routes", headers=internal_headers()).json()["routes"]
    assert route["hostnames"] == ["shop.dockyard.localhost"]
    assert route["backends"] == [{"dyno": "web.1", "address": "127.0.0.1:4001"}]
    assert (route["released"], route["web_quantity"], route["crashed"]) == (True, 2, False)
    (dyno,) = client.get("/apps/shop/dynos", headers=alice.headers).json()
    assert (dyno["name"], dyno["state"], dyno["release"]["version"]) == ("web.1", "up", 3)


def test_routes_list_the_web_dynos_that_are_up_and_flag_apps_whose_web_dynos_all_crashed(
    client: TestClient, alice: User, platform: Platform
) -> None:
    """Only web dynos that are up are backends (named, in a stable order); an app is crashed when
    web dynos are scaled and none is up or starting but one has crashed (the router's H10)."""
    ids = {}
    for name, web in (("boot", 2), ("down", 1), ("quiet", 0), ("shop", 3)):
        ids[name] = client.post("/apps", json={"name": name}, headers=alice.headers).json()["id"]
        deploy_slug(platform, name, {"web": "serve $PORT", "worker": "work"})
        client.patch(f"/apps/{name}/formation/web", json={"quantity": web}, headers=alice.headers)

    def report(app: str, name: str, state: str, address: str | None = None) -> DynoReport:
        return DynoReport(
            id=f"{app}-{name}",
            app_id=ids[app],
            name=name,
            process_type=name.split(".")[0],
            release_version=2,
            state=state,
            command="serve $PORT",
            size="standard-1x",
            started_at="2026-01-01T00:00:00+00:00",
            address=address,
        )

    reports = [
        report("shop", "web.3", "up", "127.0.0.1:4003"),
        report("shop", "web.2", "starting"),
        report("shop", "web.1", "up", "127.0.0.1:4001"),
        report("shop", "worker.1", "crashed"),
        report("down", "web.1", "crashed"),
        report("down", "worker.1", "up"),
        report("boot", "web.1", "starting"),
        report("boot", "web.2", "crashed"),
        report("quiet", "web.1", "crashed"),
    ]

    def routes_after(order: list[DynoReport]) -> tuple[dict[str, dict[str, object]], str]:
        body = {"dynos": [r.to_json() for r in order]}
        put = client.put("/internal/v1/hosts/h1/dynos", json=body, headers=internal_headers())
        assert put.status_code == 200
        response = client.get("/internal/v1/routes", headers=internal_headers())
        return {r["app_name"]: r for r in response.json()["routes"]}, response.headers["ETag"]

    routes, etag = routes_after(reports)
    assert routes["shop"]["backends"] == [
        {"dyno": "web.1", "address": "127.0.0.1:4001"},
        {"dyno": "web.3", "address": "127.0.0.1:4003"},
    ]
    assert {name: r["crashed"] for name, r in routes.items()} == {
        "boot": False,  # a dyno is starting: the router waits for it (H20 if it never comes up)
        "down": True,
        "quiet": False,  # no web dynos scaled: H14, not H10
        "shop": False,
    }
    assert [routes[name]["backends"] for name in ("boot", "down", "quiet")] == [[], [], []]
    _, same_etag = routes_after(list(reversed(reports)))
    assert same_etag == etag, "the table does not depend on the order dynos are reported in"


def test_restarts_change_the_generation_of_the_right_dynos(
    client: TestClient, alice: User, platform: Platform
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    deploy_slug(platform, "shop", {"web": "serve"})
    client.patch("/apps/shop/formation/web", json={"quantity": 2}, headers=alice.headers)

    def generations() -> list[str]:
        dynos = client.get("/internal/v1/hosts/h/desired-dynos", headers=internal_headers()).json()[
            "dynos"
        ]
        return [d["generation"] for d in dynos]

    before = generations()
    assert client.delete("/apps/shop/dynos/web.2", headers=alice.headers).status_code == 202
    after_one = generations()
    assert after_one[0] == before[0] and after_one[1] != before[1]
    assert client.delete("/apps/shop/dynos", headers=alice.headers).status_code == 202
    after_all = generations()
    assert all(a != b for a, b in zip(after_all, after_one, strict=True))
    assert client.delete("/apps/shop/dynos/web.9", headers=alice.headers).status_code == 404


def test_domains_add_list_remove(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    added = client.post(
        "/apps/shop/domains",
        json={"hostname": "WWW.Example.com", "sni_endpoint": None},
        headers=alice.headers,
    )
    assert added.status_code == 201
    assert (added.json()["hostname"], added.json()["kind"]) == ("www.example.com", "custom")
    assert added.json()["cname"] == "shop.dockyard.localhost"
    assert (
        client.post(
            "/apps/shop/domains", json={"hostname": "x.dockyard.localhost"}, headers=alice.headers
        ).status_code
        == 422
    )
    assert (
        client.delete(
            "/apps/shop/domains/shop.dockyard.localhost", headers=alice.headers
        ).status_code
        == 422
    )
    assert (
        client.delete("/apps/shop/domains/www.example.com", headers=alice.headers).status_code
        == 200
    )
    assert [d["kind"] for d in client.get("/apps/shop/domains", headers=alice.headers).json()] == [
        "heroku"
    ]


def test_ssh_keys_add_list_remove(client: TestClient, alice: User) -> None:
    import base64
    import struct

    blob = b"".join(struct.pack(">I", len(f)) + f for f in (b"ssh-ed25519", b"k" * 32))
    key = "ssh-ed25519 " + base64.b64encode(blob).decode() + " laptop"
    added = client.post("/account/keys", json={"public_key": key}, headers=alice.headers)
    assert added.status_code == 201
    assert added.json()["fingerprint"].startswith("SHA256:")
    assert (
        client.post(
            "/account/keys", json={"public_key": "ssh-dss AAAA"}, headers=alice.headers
        ).status_code
        == 422
    )
    assert len(client.get("/account/keys", headers=alice.headers).json()) == 1
    assert (
        client.delete(f"/account/keys/{added.json()['id']}", headers=alice.headers).status_code
        == 200
    )
    assert client.get("/account/keys", headers=alice.headers).json() == []


def test_log_sessions_stream_once(client: TestClient, alice: User) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    client.patch("/apps/shop/config-vars", json={"A": "1"}, headers=alice.headers)
    session = client.post(
        "/apps/shop/log-sessions", json={"lines": 10, "source": "heroku"}, headers=alice.headers
    )
    assert session.status_code == 201
    path = session.json()["logplex_url"].split("5000", 1)[1]
    text = client.get(path).text
    assert "heroku[api]: Set A config var by alice@example.com" in text
    assert client.get(path).status_code == 404


def test_the_release_type_cannot_be_scaled(
    client: TestClient, alice: User, platform: Platform
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    deploy_slug(platform, "shop", {"web": "serve", "release": "migrate"})
    # An entry left by a deploy from before the release phase existed:
    with platform.store.transaction() as tx:
        tx.ensure_formation(tx.get_app("shop").id, "release", quantity=0, size="standard-1x")
    response = client.patch(
        "/apps/shop/formation/release", json={"quantity": 1}, headers=alice.headers
    )
    assert response.status_code == 422
    assert "cannot be scaled" in response.json()["message"]
