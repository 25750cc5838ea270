"""The route table carries an app's own error and maintenance pages (Heroku's config vars)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dockyard.control.context import Platform
from tests.api.conftest import User, internal_headers
from tests.api.test_releases import deploy_slug


def test_error_and_maintenance_page_urls_come_from_the_config_vars(
    client: TestClient, alice: User, platform: Platform
) -> None:
    client.post("/apps", json={"name": "shop"}, headers=alice.headers)
    deploy_slug(platform, "shop", {"web": "serve $PORT"})
    (before,) = client.get("/internal/v1/routes", headers=internal_headers()).json()["routes"]
    client.patch(
        "/apps/shop/config-vars",
        json={
            "ERROR_PAGE_URL": "https://pages.example.com/error.html",
            "MAINTENANCE_PAGE_URL": "https://pages.example.com/maintenance.html",
        },
        headers=alice.headers,
    )
    (after,) = client.get("/internal/v1/routes", headers=internal_headers()).json()["routes"]
    assert (before["error_page_url"], before["maintenance_page_url"]) == ("", "")
    assert after["error_page_url"] == "https://pages.example.com/error.html"
    assert after["maintenance_page_url"] == "https://pages.example.com/maintenance.html"
