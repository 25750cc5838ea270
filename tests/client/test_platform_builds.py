"""PlatformClient: buildpack installations, builds, sources on the wire."""

from __future__ import annotations

import pytest

from dockyard.errors import ApiError
from tests.client.test_platform import Wire, ok

INSTALLED = [
    {"buildpack": {"url": "heroku/python", "name": "heroku/python"}, "ordinal": 1},
    {"buildpack": {"url": "urn:buildpack:heroku/nodejs", "name": "heroku/nodejs"}, "ordinal": 0},
]


def test_buildpacks_are_sorted_by_ordinal() -> None:
    wire = Wire(ok(INSTALLED))
    found = wire.client().buildpacks("shop")
    assert [(b.url, b.ordinal) for b in found] == [("heroku/nodejs", 0), ("heroku/python", 1)]
    assert wire.sent == [("GET", "/apps/shop/buildpack-installations", None, None)]


def test_set_buildpacks_puts_the_whole_list() -> None:
    wire = Wire(ok(INSTALLED[:1]))
    found = wire.client().set_buildpacks("shop", ["heroku/python"])
    assert [b.url for b in found] == ["heroku/python"]
    assert wire.sent == [
        (
            "PUT",
            "/apps/shop/buildpack-installations",
            {"updates": [{"buildpack": "heroku/python"}]},
            None,
        )
    ]


def test_set_buildpacks_refuses_a_non_list_answer() -> None:
    with pytest.raises(ApiError, match="something other than a list"):
        Wire(ok({"oops": 1})).client().set_buildpacks("shop", [])


def test_create_build_sends_heroku_shapes() -> None:
    answer = {"id": "b1", "status": "pending", "output_stream_url": "http://api.test/out"}
    wire = Wire(ok(answer, 201))
    build = wire.client().create_build(
        "shop",
        "http://api.test/sources/1?signature=x",
        checksum="SHA256:" + "a" * 64,
        version="v1",
        buildpacks=["heroku/python"],
    )
    assert (build.id, build.status, build.output_stream_url) == (
        "b1",
        "pending",
        "http://api.test/out",
    )
    assert wire.sent[0][2] == {
        "source_blob": {
            "url": "http://api.test/sources/1?signature=x",
            "checksum": "SHA256:" + "a" * 64,
            "version": "v1",
        },
        "buildpacks": [{"url": "heroku/python"}],
    }


def test_sources_and_the_build_cache() -> None:
    blob = {"source_blob": {"get_url": "http://g", "put_url": "http://p"}}
    wire = Wire(ok(blob, 201), ok({}, 202))
    client = wire.client()
    source = client.create_source()
    client.purge_build_cache("shop")
    assert (source.get_url, source.put_url) == ("http://g", "http://p")
    assert [(m, p) for m, p, _b, _r in wire.sent] == [
        ("POST", "/sources"),
        ("DELETE", "/apps/shop/build-cache"),
    ]
