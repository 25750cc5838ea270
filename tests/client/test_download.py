"""download(): a real HTTP server on loopback; redirects, errors, the size limit (declared and
actual), unreachable hosts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dockyard.client.download import download
from dockyard.errors import InvalidError, UnavailableError

BODY = b"tarball bytes " * 100


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/file.tgz":
            self._send(200, BODY)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/file.tgz")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/lying":  # no Content-Length: only the bytes tell
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
        else:
            self._send(404, b"not here")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_downloads_follow_redirects(server: str, tmp_path: Path) -> None:
    target = tmp_path / "x.tgz"
    assert download(f"{server}/moved", target, max_bytes=10_000) == len(BODY)
    assert target.read_bytes() == BODY


def test_error_answers_are_reported(server: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="the server answered 404"):
        download(f"{server}/missing", tmp_path / "x", max_bytes=10_000)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("path", ["/file.tgz", "/lying"])
def test_the_size_limit_holds_declared_or_not(server: str, tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidError, match="limit"):
        download(f"{server}{path}", tmp_path / "x", max_bytes=100)
    assert not (tmp_path / "x").exists()


def test_unreachable_hosts_and_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="Cannot download"):
        download("http://127.0.0.1:9/x.tgz", tmp_path / "x", max_bytes=100, timeout=2)
    with pytest.raises(InvalidError, match="not an http"):
        download("file:///etc/passwd", tmp_path / "y", max_bytes=100)
