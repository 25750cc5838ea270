"""``/apps/{app}/slugs``: Heroku's slug shape, the tar.gz export behind ``blob.url``, uploads."""

from __future__ import annotations

import hashlib
import io
import tarfile
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from dockyard.control.context import Platform
from dockyard.slug.image import make_image
from tests.api.conftest import User
from tests.api.test_releases import deploy_slug


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def slug_tarball(files: dict[str, bytes], root: str = "./app/") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(root + name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _shop(client: TestClient, alice: User) -> None:
    assert client.post("/apps", json={"name": "shop"}, headers=alice.headers).status_code == 201


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def test_slug_info_and_its_tarball(client: TestClient, alice: User, platform: Platform) -> None:
    source = platform.settings.data_dir / "tree"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "web").write_text("#!/bin/sh\nexec python3 -m http.server $PORT\n")
    image = platform.settings.data_dir / "image.squashfs"
    make_image(source, image)
    digest, _size = platform.slugs.put(image)
    slug_id = deploy_slug(platform, "shop", {"web": "bin/web"}, digest=digest)

    info = client.get(f"/apps/shop/slugs/{slug_id}", headers=alice.headers)

    assert info.status_code == 200
    body = info.json()
    assert body["id"] == slug_id
    assert body["checksum"] == f"SHA256:{digest}"
    assert body["process_types"] == {"web": "bin/web"}
    assert body["commit"] == "abc1234def"
    assert body["stack"]["name"] == "heroku-24"
    assert body["blob"]["method"] == "get"
    blob = client.get(local(body["blob"]["url"]))
    assert blob.status_code == 200
    members = _members(blob.content)
    assert members["./app/bin/web"].startswith(b"#!/bin/sh")
    assert client.get(urlsplit(body["blob"]["url"]).path).status_code == 404  # unsigned


def test_unknown_and_foreign_slugs_are_not_found(
    client: TestClient, alice: User, bob: User
) -> None:
    assert client.get("/apps/shop/slugs/nope", headers=alice.headers).status_code == 404
    assert client.post("/apps", json={"name": "other"}, headers=bob.headers).status_code == 201
    assert client.get("/apps/other/slugs/nope", headers=alice.headers).status_code == 404


def test_uploading_a_slug_and_releasing_it(
    client: TestClient, alice: User, platform: Platform
) -> None:
    data = slug_tarball({"run.sh": b"#!/bin/sh\necho hi\n"})
    checksum = "SHA256:" + hashlib.sha256(data).hexdigest()
    created = client.post(
        "/apps/shop/slugs",
        json={"process_types": {"web": "./run.sh"}, "commit": "c0ffee", "checksum": checksum},
        headers=alice.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["blob"]["method"] == "put"
    assert body["size"] is None
    early = client.post("/apps/shop/releases", json={"slug": body["id"]}, headers=alice.headers)
    assert early.status_code == 422

    put = client.put(local(body["blob"]["url"]), content=data)

    assert put.status_code == 200, put.text
    info = client.get(f"/apps/shop/slugs/{body['id']}", headers=alice.headers).json()
    assert info["blob"]["method"] == "get"
    assert info["process_types"] == {"web": "./run.sh"}
    assert info["commit"] == "c0ffee"
    assert _members(client.get(local(info["blob"]["url"])).content)["./app/run.sh"] == (
        b"#!/bin/sh\necho hi\n"
    )
    release = client.post("/apps/shop/releases", json={"slug": body["id"]}, headers=alice.headers)
    assert release.status_code == 201, release.text
    assert release.json()["slug"] == {"id": info["id"]}
    assert release.json()["status"] == "succeeded"
    again = client.put(local(body["blob"]["url"]), content=data)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"process_types": {}}, "process_types is required"),
        ({"process_types": {"bad type!": "x"}}, "is invalid"),
        ({"process_types": {"web": "x"}, "checksum": "MD5:1"}, "is not SHA256"),
        ({"process_types": {"web": "x"}, "stack": "cedar-14"}, "is not the stack"),
    ],
)
def test_bad_slug_metadata(
    client: TestClient, alice: User, body: dict[str, object], message: str
) -> None:
    response = client.post("/apps/shop/slugs", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert message in response.json()["message"]


def _announce(client: TestClient, user: User, **extra: object) -> str:
    body = {"process_types": {"web": "./run.sh"}, **extra}
    created = client.post("/apps/shop/slugs", json=body, headers=user.headers).json()
    return local(created["blob"]["url"])


def test_bad_slug_tarballs_are_refused(client: TestClient, alice: User) -> None:
    wrong_layout = client.put(
        _announce(client, alice), content=slug_tarball({"run.sh": b"x"}, root="./")
    )
    assert wrong_layout.status_code == 422
    assert "./app/" in wrong_layout.json()["message"]
    escaping = client.put(_announce(client, alice), content=slug_tarball({"x": b"x"}, root="../"))
    assert escaping.status_code == 422
    mismatch = client.put(
        _announce(client, alice, checksum="SHA256:" + "0" * 64),
        content=slug_tarball({"run.sh": b"x"}),
    )
    assert mismatch.status_code == 422
    assert "checksum" in mismatch.json()["message"]
