"""StaticBuildpack: detection, static.json checks, and a site built into a slug whose default web
process serves it after the slug was moved."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from dockyard.build.buildpacks import builtin_buildpacks
from dockyard.build.buildpacks.static import StaticBuildpack, read_static_json
from dockyard.build.output import BuildOutput
from dockyard.build.pipeline import BuildPipeline
from dockyard.errors import CompileError
from dockyard.slug.store import SlugStore
from tests.build.buildpacks.conftest import dyno, get, unpack_moved
from tests.build.conftest import write_tree

SHA = "d" * 40


def test_detects_index_html_or_static_json(tmp_path: Path) -> None:
    assert StaticBuildpack().detect(tmp_path) is None
    (tmp_path / "static.json").write_text("{}")
    assert StaticBuildpack().detect(tmp_path) == "Static site"


def test_python_and_node_apps_are_detected_before_a_static_index(tmp_path: Path) -> None:
    write_tree(tmp_path, {"index.html": "", "package.json": "{}"})
    detected = next(b for b in builtin_buildpacks() if b.detect(tmp_path) is not None)
    assert detected.name == "heroku/nodejs"


def test_static_json_is_checked_and_normalised(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "public/index.html": "",
            "public/oops.html": "",
            "static.json": json.dumps(
                {
                    "root": "public/",
                    "clean_urls": True,
                    "headers": {"/**": {"X-Frame-Options": "DENY"}},
                    "redirects": {"/old": {"url": "/new"}},
                    "routes": {"/app/**": "index.html"},
                    "error_page": "/oops.html",
                    "https_only": True,
                }
            ),
        },
    )
    config, ignored = read_static_json(tmp_path)
    assert config == {
        "root": "public",
        "clean_urls": True,
        "headers": [["/**", {"X-Frame-Options": "DENY"}]],
        "redirects": {"/old": {"url": "/new", "status": 301}},
        "routes": [["/app/**", "index.html"]],
        "error_page": "oops.html",
    }
    assert ignored == ["https_only"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"root": "../elsewhere"},
            '"root" (../elsewhere) must be a directory inside the repository',
        ),
        ({"root": "missing"}, '"root" (missing) is not a directory in the repository'),
        ({"clean_urls": "yes"}, '"clean_urls" must be true or false'),
        ({"redirects": {"/a": {"url": "/b", "status": 200}}}, 'for "/a" has status 200'),
        ({"redirects": {"a": {"url": "/b"}}}, 'has the path "a", which must start with "/"'),
        ({"headers": {"/": {"X-A": "1\r\nSet-Cookie: x"}}}, 'has an invalid header "X-A"'),
        ({"routes": {"/**": "../../etc/passwd"}}, 'for "/**" must name a file under the root'),
        ({"error_page": "nope.html"}, '"error_page" must name a file under the root'),
    ],
)
def test_a_wrong_static_json_setting_fails_naming_it(
    tmp_path: Path, settings: dict[str, object], message: str
) -> None:
    write_tree(tmp_path, {"index.html": "", "static.json": json.dumps(settings)})
    with pytest.raises(CompileError) as caught:
        read_static_json(tmp_path)
    assert message in caught.value.message


def test_a_static_site_is_served_by_its_default_web_process(
    tmp_path: Path, pipeline: BuildPipeline, slugs: SlugStore
) -> None:
    source = write_tree(
        tmp_path / "src",
        {
            "index.html": "<h1>home</h1>",
            "about.html": "<h1>about</h1>",
            "static.json": json.dumps({"clean_urls": True, "headers": {"/**": {"X-Site": "1"}}}),
            ".env": "SECRET=1",
        },
    )
    lines: list[str] = []

    result = pipeline.run("s", source, {}, SHA, BuildOutput(lines.append), builtin_buildpacks())

    assert result.framework == "Static site"
    assert result.process_types == {"web": "python3 .dockyard/static.py"}
    assert "-----> Installing the static file server" in lines
    slug = unpack_moved(slugs, result.digest, tmp_path)
    with dyno(slug, result.process_types["web"]) as url:
        assert get(url + "/") == (200, "<h1>home</h1>")
        assert get(url + "/about") == (200, "<h1>about</h1>")
        assert get(url + "/.env")[0] == 404
        assert get(url + "/.dockyard/static.json")[0] == 404
        with urllib.request.urlopen(url + "/about") as response:  # noqa: S310 - local server
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert response.headers["X-Site"] == "1"
