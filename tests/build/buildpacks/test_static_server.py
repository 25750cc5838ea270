"""The static file server copied into static-site slugs: what it answers for each path, and the
real server on a socket (content types, ETags, HEAD, methods, traversal over a raw connection)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.build.buildpacks.static_server import (
    Answer,
    Site,
    content_type,
    load_site,
    make_server,
    resolve,
)
from tests.build.conftest import write_tree


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = write_tree(
        tmp_path / "site",
        {
            "index.html": "<h1>home</h1>",
            "about.html": "about",
            "docs/index.html": "docs",
            "docs/guide.html": "guide",
            "app.js": "console.log(1)",
            "404.html": "custom not found",
            ".env": "SECRET=1",
            ".well-known/security.txt": "Contact: x",
        },
    )
    (tmp_path / "outside.txt").write_text("secret")
    (site / "leak.txt").symlink_to(tmp_path / "outside.txt")
    (site / "inner.txt").symlink_to(site / "about.html")
    return site


def _site(root: Path, **config: object) -> Site:
    return load_site({"root": root.name, **config}, str(root.parent))


def _file(root: Path, name: str) -> Answer:
    return Answer(200, os.path.realpath(root / name))


def test_files_and_directory_indexes(root: Path) -> None:
    site = _site(root)
    assert resolve(site, "/") == _file(root, "index.html")
    assert resolve(site, "/app.js?v=3") == _file(root, "app.js")
    assert resolve(site, "/docs/") == _file(root, "docs/index.html")
    assert resolve(site, "/docs?x=1") == Answer(301, location="/docs/?x=1")
    assert resolve(site, "/inner.txt") == _file(root, "about.html")


@pytest.mark.parametrize(
    "target", ["/../outside.txt", "/docs/../../outside.txt", "/%2e%2e/outside.txt", "/a%00b", "x"]
)
def test_paths_that_try_to_leave_the_root_are_bad_requests(root: Path, target: str) -> None:
    assert resolve(_site(root), target) == Answer(400)


def test_links_out_of_the_root_and_dot_files_are_not_found(root: Path) -> None:
    site = _site(root)
    not_found = _file(root, "404.html")
    assert resolve(site, "/leak.txt") == Answer(404, not_found.file)
    assert resolve(site, "/.env") == Answer(404, not_found.file)
    assert resolve(site, "/.well-known/security.txt") == _file(root, ".well-known/security.txt")


def test_clean_urls(root: Path) -> None:
    site = _site(root, clean_urls=True)
    assert resolve(site, "/about") == _file(root, "about.html")
    assert resolve(site, "/docs/guide") == _file(root, "docs/guide.html")
    assert resolve(site, "/about.html?a=b") == Answer(301, location="/about?a=b")
    assert resolve(site, "/index.html") == Answer(301, location="/")
    assert resolve(_site(root), "/about") == Answer(404, _file(root, "404.html").file)


def test_redirects_routes_and_error_page(root: Path) -> None:
    site = _site(
        root,
        redirects={"/old": {"url": "https://example.com/new", "status": 302}},
        routes=[["/app/**", "index.html"]],
        error_page="about.html",
    )
    assert resolve(site, "/old") == Answer(302, location="https://example.com/new")
    assert resolve(site, "/app/users/7") == _file(root, "index.html")
    assert resolve(site, "/nothing") == Answer(404, _file(root, "about.html").file)


def test_without_an_error_page_the_built_in_one_is_used(root: Path) -> None:
    (root / "404.html").unlink()
    assert resolve(_site(root), "/nothing") == Answer(404)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html; charset=utf-8"),
        ("a.JS", "text/javascript; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.woff2", "font/woff2"),
        ("a.wasm", "application/wasm"),
        ("a.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected


@pytest.fixture
def server(root: Path) -> Iterator[str]:
    site = _site(root, headers=[["/*.js", {"Cache-Control": "max-age=60"}]])
    httpd = make_server(site, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_server_sends_files_with_type_length_etag_and_headers(server: str) -> None:
    response = httpx.get(server + "/app.js")
    assert response.status_code == 200
    assert response.text == "console.log(1)"
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["Content-Length"] == "14"
    assert response.headers["Cache-Control"] == "max-age=60"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    etag = response.headers["ETag"]
    again = httpx.get(server + "/app.js", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")


def test_head_has_headers_but_no_body_and_other_methods_are_refused(server: str) -> None:
    head = httpx.head(server + "/")
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "13", b"")
    post = httpx.post(server + "/", content=b"x")
    assert (post.status_code, post.headers["Allow"]) == (405, "GET, HEAD")


def test_not_found_uses_the_sites_404_page(server: str) -> None:
    response = httpx.get(server + "/missing")
    assert (response.status_code, response.text) == (404, "custom not found")


def test_a_raw_traversal_request_is_refused(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /../outside.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"secret" not in data
