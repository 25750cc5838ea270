"""Dockyard's static file server: the ``web`` process of static sites.

The static buildpack copies this file into the slug as ``.dockyard/static.py`` with the site's
settings in ``.dockyard/static.json``; it runs as ``python3 .dockyard/static.py`` on ``$PORT``.
It uses the standard library only (it runs with the stack's Python, outside any virtualenv) and
imports nothing from Dockyard.

What it serves: regular files under the site root, ``index.html`` for directories, ``.html``
files without their suffix when ``clean_urls`` is on, the ``routes`` fallbacks (e.g. every path
to ``index.html`` for a single-page app), ``redirects``, per-path ``headers``, and a 404 page
(``error_page``, else the root's ``404.html``, else a built-in one). It never serves a path with
``..`` in it, a file reached through a link that leaves the root, or a dot-file (``.profile.d``,
``.env``, ``.dockyard`` — ``.well-known`` excepted), and it lists no directories. Responses carry
the content type by file extension, ``Content-Length``, a content-hash ``ETag`` (answered with 304
on ``If-None-Match``) and ``X-Content-Type-Options: nosniff``. Only GET and HEAD are allowed.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import mimetypes
import os
import re
import signal
import sys
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

CONFIG_NAME = "static.json"
CHUNK = 1 << 16
TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
}
TEXT_TYPES = frozenset(
    {"application/json", "application/manifest+json", "application/xml", "image/svg+xml"}
)
NOT_FOUND_PAGE = (
    b"<!doctype html>\n<html><head><meta charset=utf-8><title>Not found</title></head>"
    b"<body><h1>Not found</h1><p>The page you asked for does not exist.</p></body></html>\n"
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """``**`` matches anything, ``*`` anything but ``/``; the rest is literal."""
    parts = re.split(r"(\*\*|\*)", pattern)
    body = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(body)


@dataclass(frozen=True)
class Site:
    root: str
    """Absolute and resolved: every file served lies under it."""
    clean_urls: bool = False
    headers: Sequence[tuple[re.Pattern[str], Mapping[str, str]]] = ()
    redirects: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    routes: Sequence[tuple[re.Pattern[str], str]] = ()
    error_page: str | None = None


def load_site(config: Mapping[str, Any], slug_root: str) -> Site:
    """A ``Site`` from the settings the buildpack wrote (already checked at build time)."""
    root = os.path.realpath(os.path.join(slug_root, str(config.get("root", "."))))
    headers = [
        (glob_pattern(str(pattern)), {str(k): str(v) for k, v in values.items()})
        for pattern, values in config.get("headers", [])
    ]
    redirects = {
        str(path): (str(target["url"]), int(target.get("status", 301)))
        for path, target in config.get("redirects", {}).items()
    }
    routes = [(glob_pattern(str(p)), str(target)) for p, target in config.get("routes", [])]
    error_page = config.get("error_page")
    if error_page is None and os.path.isfile(os.path.join(root, "404.html")):
        error_page = "404.html"
    return Site(
        root=root,
        clean_urls=bool(config.get("clean_urls", False)),
        headers=headers,
        redirects=redirects,
        routes=routes,
        error_page=None if error_page is None else str(error_page),
    )


@dataclass(frozen=True)
class Answer:
    status: int
    file: str | None = None
    location: str | None = None


def resolve(site: Site, target: str) -> Answer:
    """What to answer for a request target (path and query), without touching the network."""
    parts = urllib.parse.urlsplit(target)
    raw = parts.path
    if not raw.startswith("/"):
        return Answer(400)
    path = urllib.parse.unquote(raw, errors="replace")
    if "\x00" in path or "\\" in path:
        return Answer(400)
    if path in site.redirects:
        location, status = site.redirects[path]
        return Answer(status, location=location)
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if ".." in segments:
        return Answer(400)
    if any(s.startswith(".") and s != ".well-known" for s in segments):
        return _not_found(site)
    query = f"?{parts.query}" if parts.query else ""
    answer = _lookup(site, raw, path.endswith("/"), "/".join(segments), query)
    if answer is not None:
        return answer
    for pattern, route in site.routes:
        if pattern.fullmatch(path):
            found = _file(site, os.path.join(site.root, route))
            if found is not None:
                return Answer(200, found)
    return _not_found(site)


def _lookup(site: Site, raw: str, slash: bool, relative: str, query: str) -> Answer | None:
    """The file (or redirect) for a clean relative path, None when there is none."""
    candidate = os.path.join(site.root, relative) if relative else site.root
    if os.path.isdir(candidate) and _inside(site, candidate):
        if not slash and relative:
            return Answer(301, location=raw + "/" + query)
        index = _file(site, os.path.join(candidate, "index.html"))
        return None if index is None else Answer(200, index)
    found = _file(site, candidate)
    if found is not None:
        if site.clean_urls and relative.endswith(".html"):
            clean = raw[: -len(".html")]
            clean = clean[: -len("index")] if clean.endswith("/index") else clean
            return Answer(301, location=(clean or "/") + query)
        return Answer(200, found)
    if site.clean_urls:
        found = _file(site, candidate + ".html")
        if found is not None:
            return Answer(200, found)
    return None


def _not_found(site: Site) -> Answer:
    page = None if site.error_page is None else os.path.join(site.root, site.error_page)
    return Answer(404, None if page is None else _file(site, page))


def _inside(site: Site, path: str) -> bool:
    real = os.path.realpath(path)
    return real == site.root or real.startswith(site.root + os.sep)


def _file(site: Site, path: str) -> str | None:
    """``path`` resolved, when it is a regular file under the root."""
    real = os.path.realpath(path)
    if not real.startswith(site.root + os.sep) or not os.path.isfile(real):
        return None
    return real


def content_type(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    kind = TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in TEXT_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


class ETags:
    """Content hashes of the served files, computed once: a slug never changes under a dyno."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> str:
        with self._lock:
            known = self._known.get(path)
        if known is not None:
            return known
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        tag = f'"{digest.hexdigest()[:32]}"'
        with self._lock:
            self._known[path] = tag
        return tag


class StaticHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dockyard-static"
    sys_version = ""
    timeout = 120
    site: Site
    etags: ETags

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _refuse(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _answer(self, *, body: bool) -> None:
        answer = resolve(self.site, self.path)
        if answer.location is not None:
            self.send_response(answer.status)
            self.send_header("Location", answer.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if answer.status == 400:
            self._send_bytes(400, b"Bad request\n", "text/plain; charset=utf-8", body=body)
            return
        if answer.file is None:
            self._send_bytes(404, NOT_FOUND_PAGE, "text/html; charset=utf-8", body=body)
            return
        self._send_file(answer.status, answer.file, body=body)

    def _extra_headers(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path, errors="replace")
        merged: dict[str, str] = {}
        for pattern, values in self.site.headers:
            if pattern.fullmatch(path):
                merged.update(values)
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in merged.items():
            self.send_header(name, value)

    def _send_bytes(self, status: int, data: bytes, kind: str, *, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self._extra_headers()
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _send_file(self, status: int, path: str, *, body: bool) -> None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after sendfile
        except OSError:
            self._send_bytes(404, NOT_FOUND_PAGE, "text/html; charset=utf-8", body=body)
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            etag = self.etags.get(path)
            if status == 200 and etag in self.headers.get("If-None-Match", ""):
                self.send_response(304)
                self.send_header("ETag", etag)
                self._extra_headers()
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", etag)
            self._extra_headers()
            self.end_headers()
            if body and size:
                self.connection.sendfile(handle)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, http.HTTPStatus) else code
        sys.stdout.write(f"{self.command} {self.path[:300]} {status}\n")
        sys.stdout.flush()

    def log_error(self, format: str, *args: Any) -> None:
        sys.stderr.write((format % args) + "\n")
        sys.stderr.flush()


class StaticServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def make_server(site: Site, host: str, port: int) -> StaticServer:
    handler = type("Handler", (StaticHandler,), {"site": site, "etags": ETags()})
    return StaticServer((host, port), handler)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    slug_root = os.path.dirname(here)
    config_path = os.path.join(here, CONFIG_NAME)
    config: dict[str, Any] = {}
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    site = load_site(config, slug_root)
    port = int(os.environ.get("PORT", "5000"))
    server = make_server(site, "0.0.0.0", port)  # noqa: S104 - a dyno listens on all of its addresses
    signal.signal(signal.SIGTERM, _stop)
    sys.stdout.write(f"Serving {site.root} on port {port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
