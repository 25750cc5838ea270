"""The Build API and sources: upload a tarball, build it in the background, stream its output,
checksums, bad input, the build cache."""

from __future__ import annotations

import hashlib
import io
import tarfile
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from dockyard._util.clock import FakeClock
from dockyard.control.context import Platform
from tests.api.conftest import User

PROCFILE = b"web: python3 -m http.server $PORT\n"


def tarball(files: dict[str, bytes], prefix: str = "shop-main/") -> bytes:
    """A gzipped tarball with one top-level directory, as GitHub serves them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def local(url: str) -> str:
    """The path and query of one of the API's own URLs, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture(autouse=True)
def _shop(client: TestClient, alice: User) -> None:
    assert client.post("/apps", json={"name": "shop"}, headers=alice.headers).status_code == 201


def upload(client: TestClient, user: User, data: bytes) -> str:
    created = client.post("/sources", headers=user.headers)
    assert created.status_code == 201
    blob = created.json()["source_blob"]
    assert client.put(local(blob["put_url"]), content=data).status_code == 200
    return str(blob["get_url"])


def test_sources_take_one_upload_and_serve_it_back(client: TestClient, alice: User) -> None:
    data = tarball({"Procfile": PROCFILE})
    blob = client.post("/sources", headers=alice.headers).json()["source_blob"]
    assert blob["get_url"] != blob["put_url"]
    assert client.get(local(blob["get_url"])).status_code == 404  # nothing uploaded yet

    assert client.put(local(blob["put_url"]), content=data).status_code == 200

    assert client.get(local(blob["get_url"])).content == data
    again = client.put(local(blob["put_url"]), content=b"other")
    assert again.status_code == 409
    assert client.get(local(blob["get_url"])).content == data


def test_source_urls_need_their_own_signature(client: TestClient, alice: User) -> None:
    blob = client.post("/sources", headers=alice.headers).json()["source_blob"]
    path = urlsplit(blob["put_url"]).path
    assert client.put(path, content=b"x").status_code == 404
    assert client.put(f"{path}?signature=0000", content=b"x").status_code == 404
    get_signature = urlsplit(blob["get_url"]).query
    assert client.put(f"{path}?{get_signature}", content=b"x").status_code == 404
    assert client.post("/sources").status_code == 401


def test_source_urls_expire_after_an_hour(
    client: TestClient, alice: User, clock: FakeClock
) -> None:
    get_url = upload(client, alice, b"data")
    clock.advance(3601)
    assert client.get(local(get_url)).status_code == 404
    client.post("/sources", headers=alice.headers)  # sweeps expired uploads


def test_uploads_over_the_limit_are_refused(
    client: TestClient, alice: User, platform: Platform
) -> None:
    blob = client.post("/sources", headers=alice.headers).json()["source_blob"]
    limit = platform.settings.build.max_source_bytes
    too_big = client.put(local(blob["put_url"]), content=b"x" * (limit + 1))
    assert too_big.status_code == 422
    assert client.get(local(blob["get_url"])).status_code == 404


@pytest.fixture
def small_limit(platform: Platform) -> None:
    import dataclasses

    platform.settings = dataclasses.replace(
        platform.settings,
        build=dataclasses.replace(platform.settings.build, max_source_bytes=1000),
    )


@pytest.mark.usefixtures("small_limit")
def test_a_small_limit_applies(client: TestClient, alice: User) -> None:
    blob = client.post("/sources", headers=alice.headers).json()["source_blob"]
    assert client.put(local(blob["put_url"]), content=b"x" * 1001).status_code == 422


def test_a_build_from_an_uploaded_tarball_runs_in_the_background(
    client: TestClient, alice: User, platform: Platform
) -> None:
    data = tarball({"Procfile": PROCFILE, "app.py": b"print('hi')\n"})
    get_url = upload(client, alice, data)
    checksum = "SHA256:" + hashlib.sha256(data).hexdigest()

    created = client.post(
        "/apps/shop/builds",
        json={"source_blob": {"url": get_url, "checksum": checksum, "version": "v1.2"}},
        headers=alice.headers,
    )

    assert created.status_code == 201, created.text
    build = created.json()
    assert build["status"] == "pending"
    assert build["source_blob"]["version"] == "v1.2"
    stream = client.get(local(build["output_stream_url"]))  # follows the build until it ends
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/plain")
    assert "-----> Fetching the source tarball" in stream.text
    assert stream.text.rstrip().endswith("deployed to Dockyard")
    info = client.get(f"/apps/shop/builds/{build['id']}", headers=alice.headers).json()
    assert info["status"] == "succeeded"
    assert info["release"] is not None
    assert client.get(local(build["output_stream_url"])).text == stream.text  # kept afterwards
    releases = client.get("/apps/shop/releases", headers=alice.headers).json()
    assert [r["description"] for r in releases] == ["Initial release", "Deploy v1.2"]
    slug = client.get(f"/apps/shop/slugs/{info['slug']['id']}", headers=alice.headers)
    assert slug.json()["process_types"] == {"web": "python3 -m http.server $PORT"}


def test_a_checksum_mismatch_fails_the_build(client: TestClient, alice: User) -> None:
    get_url = upload(client, alice, tarball({"Procfile": PROCFILE}))
    build = client.post(
        "/apps/shop/builds",
        json={"source_blob": {"url": get_url, "checksum": "SHA256:" + "0" * 64}},
        headers=alice.headers,
    ).json()

    text = client.get(local(build["output_stream_url"])).text

    assert " !     The source tarball's checksum is SHA256:" in text
    info = client.get(f"/apps/shop/builds/{build['id']}", headers=alice.headers).json()
    assert info["status"] == "failed"
    assert len(client.get("/apps/shop/releases", headers=alice.headers).json()) == 1


def test_a_hostile_tarball_fails_the_build(client: TestClient, alice: User) -> None:
    get_url = upload(client, alice, tarball({"../escape": b"x"}, prefix=""))
    build = client.post(
        "/apps/shop/builds", json={"source_blob": {"url": get_url}}, headers=alice.headers
    ).json()
    client.get(local(build["output_stream_url"]))
    info = client.get(f"/apps/shop/builds/{build['id']}", headers=alice.headers).json()
    assert info["status"] == "failed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"source_blob": {"url": "ftp://example.com/x.tgz"}}, "must be the http(s) URL"),
        (
            {"source_blob": {"url": "https://example.com/x.tgz", "checksum": "MD5:abc"}},
            "is not SHA256:<64 hex digits>",
        ),
        (
            {"source_blob": {"url": "https://example.com/x.tgz"}, "buildpacks": [{"url": "x"}]},
            "x is not a known buildpack",
        ),
        ({"source_blob": {}}, "source_blob.url"),
    ],
)
def test_bad_build_requests_change_nothing(
    client: TestClient, alice: User, body: dict[str, object], message: str
) -> None:
    response = client.post("/apps/shop/builds", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert client.get("/apps/shop/builds", headers=alice.headers).json() == []


def test_build_output_urls_need_their_signature(client: TestClient, alice: User) -> None:
    get_url = upload(client, alice, tarball({"Procfile": PROCFILE}))
    build = client.post(
        "/apps/shop/builds", json={"source_blob": {"url": get_url}}, headers=alice.headers
    ).json()
    client.get(local(build["output_stream_url"]))
    path = urlsplit(build["output_stream_url"]).path
    assert client.get(path).status_code == 404
    assert client.get(f"{path}?signature=abc").status_code == 404


def test_strangers_cannot_build(client: TestClient, alice: User, bob: User) -> None:
    get_url = upload(client, bob, tarball({"Procfile": PROCFILE}))
    response = client.post(
        "/apps/shop/builds", json={"source_blob": {"url": get_url}}, headers=bob.headers
    )
    assert response.status_code == 404


def test_purging_the_build_cache(client: TestClient, alice: User, platform: Platform) -> None:
    app_id = client.get("/apps/shop", headers=alice.headers).json()["id"]
    cache = platform.settings.cache_dir / app_id
    (cache / "pip").mkdir(parents=True)
    response = client.delete("/apps/shop/build-cache", headers=alice.headers)
    assert response.status_code == 202
    assert not cache.exists()
