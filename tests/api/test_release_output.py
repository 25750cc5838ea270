"""Releases with a release command through the API: answered pending, output streamed from the
signed ``output_stream_url`` and kept afterwards, a failure leaves the current release alone."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from dockyard.control.context import Platform
from dockyard.runtime.process import ProcessRuntime
from dockyard.slug.image import make_image
from tests.api.conftest import User
from tests.runtime.slugs import clean_up


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture(autouse=True)
def _shop(client: TestClient, alice: User, platform: Platform) -> Iterator[None]:
    assert client.post("/apps", json={"name": "shop"}, headers=alice.headers).status_code == 201
    yield
    clean_up(ProcessRuntime(platform.settings))


def _slug(platform: Platform, name: str, release: str) -> str:
    source = platform.settings.data_dir / name
    source.mkdir()
    (source / "migrate.sh").write_text("#!/bin/sh\necho migrating\nexit ${EXIT:-0}\n")
    (source / "migrate.sh").chmod(0o755)
    image = platform.settings.data_dir / f"{name}.squashfs"
    make_image(source, image)
    digest, size = platform.slugs.put(image)
    with platform.store.transaction() as tx:
        app = tx.get_app("shop")
        return tx.create_slug(
            app.id,
            digest=digest,
            size=size,
            process_types={"release": release, "web": "sleep 1000"},
            commit=None,
            stack=app.stack,
        ).id


def test_a_release_answers_pending_and_streams_its_output(
    client: TestClient, alice: User, platform: Platform
) -> None:
    slug_id = _slug(platform, "one", "./migrate.sh")

    created = client.post("/apps/shop/releases", json={"slug": slug_id}, headers=alice.headers)

    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["current"]) == ("pending", False)
    stream = client.get(local(body["output_stream_url"]))
    assert stream.status_code == 200
    assert stream.text == "migrating\n"
    info = client.get("/apps/shop/releases/2", headers=alice.headers).json()
    assert (info["status"], info["current"]) == ("succeeded", True)
    assert client.get(local(info["output_stream_url"])).text == "migrating\n"
    assert client.get(urlsplit(info["output_stream_url"]).path).status_code == 404


def test_a_config_change_whose_release_command_fails_keeps_the_current_release(
    client: TestClient, alice: User, platform: Platform
) -> None:
    slug_id = _slug(platform, "one", "./migrate.sh")
    first = client.post("/apps/shop/releases", json={"slug": slug_id}, headers=alice.headers)
    client.get(local(first.json()["output_stream_url"]))  # waits for v2 to settle

    patched = client.patch("/apps/shop/config-vars", json={"EXIT": "4"}, headers=alice.headers)

    assert patched.json() == {"EXIT": "4"}  # the config itself changes at once
    v3 = client.get("/apps/shop/releases/3", headers=alice.headers).json()
    text = client.get(local(v3["output_stream_url"])).text
    assert text == "migrating\nthe command `./migrate.sh` exited with status 4\n"
    releases = client.get("/apps/shop/releases", headers=alice.headers).json()
    assert [(r["version"], r["status"], r["current"]) for r in releases] == [
        (1, "succeeded", False),
        (2, "succeeded", True),
        (3, "failed", False),
    ]
    assert [r["eligible_for_rollback"] for r in releases] == [True, True, False]


def test_releases_without_a_release_command_have_no_output_stream(
    client: TestClient, alice: User
) -> None:
    (release,) = client.get("/apps/shop/releases", headers=alice.headers).json()
    assert release["output_stream_url"] is None
