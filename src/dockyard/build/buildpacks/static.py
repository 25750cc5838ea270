"""``StaticBuildpack``: static sites (an ``index.html`` or a ``static.json`` in the root), served by
a small built-in file server (``static_server.py``, copied into the slug as ``.dockyard/static.py``)
as the default ``web`` process.

``static.json`` is checked at build time; a subset of Heroku's static buildpack settings is
supported (docs/buildpacks.md has the details):

- ``root``: the directory to serve, inside the repository (default: the repository root);
- ``clean_urls``: serve ``/about`` from ``about.html`` (and redirect ``/about.html`` to ``/about``);
- ``headers``: ``{"/path or glob": {"Header-Name": "value"}}``, every matching entry applies;
- ``redirects``: ``{"/old": {"url": "/new", "status": 301}}`` for exact paths;
- ``routes``: ``{"/**": "index.html"}`` fallbacks for paths with no file (single-page apps);
- ``error_page``: the file served with 404 (default: ``404.html`` when the root has one).

Other keys (``https_only``, ``proxies``, …) are reported as unsupported and ignored.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from dockyard.build.buildpack import BuildEnv, BuildpackRelease
from dockyard.build.output import BuildOutput
from dockyard.build.stack import write_file
from dockyard.errors import CompileError

STATIC_JSON = "static.json"
SERVER_DIR = ".dockyard"
SERVER_SCRIPT = f"{SERVER_DIR}/static.py"
SERVER_CONFIG = f"{SERVER_DIR}/static.json"
WEB_COMMAND = f"python3 {SERVER_SCRIPT}"
SUPPORTED = ("root", "clean_urls", "headers", "redirects", "routes", "error_page")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_STATIC_JSON = 256 * 1024


class StaticBuildpack:
    name = "heroku/static"
    looks_for = "index.html or static.json"

    def detect(self, build_dir: Path) -> str | None:
        if (build_dir / "index.html").is_file() or (build_dir / STATIC_JSON).is_file():
            return "Static site"
        return None

    def compile(
        self, build_dir: Path, cache_dir: Path, env_dir: Path, output: BuildOutput, env: BuildEnv
    ) -> None:
        output.heading("Installing the static file server")
        config, ignored = read_static_json(build_dir)
        for key in ignored:
            output.detail(f'{STATIC_JSON}: "{key}" is not supported by Dockyard and is ignored')
        server = resources.files("dockyard.build.buildpacks").joinpath("static_server.py")
        write_file(build_dir, SERVER_SCRIPT, server.read_bytes(), env)
        write_file(build_dir, SERVER_CONFIG, (json.dumps(config, indent=2) + "\n").encode(), env)
        root = config.get("root", ".")
        output.detail(
            f"Serving {'the repository root' if root == '.' else root} with {WEB_COMMAND}"
        )

    def release(self, build_dir: Path) -> BuildpackRelease:
        return BuildpackRelease(default_process_types={"web": WEB_COMMAND})


def read_static_json(build_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The server's settings from ``static.json`` (``{}`` without one), checked, and the keys that
    are ignored; ``CompileError`` names the key that is wrong."""
    path = build_dir / STATIC_JSON
    if not path.is_file():
        return {}, []
    if path.stat().st_size > MAX_STATIC_JSON:
        raise CompileError(f"{STATIC_JSON} is larger than {MAX_STATIC_JSON // 1024} KB")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CompileError(f"{STATIC_JSON} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise CompileError(
            f"{STATIC_JSON} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise CompileError(f"{STATIC_JSON} must hold a JSON object")
    return _settings(build_dir, data), sorted(key for key in data if key not in SUPPORTED)


def _settings(build_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    root = _root(build_dir, data.get("root", "."))
    config["root"] = root
    if "clean_urls" in data:
        if not isinstance(data["clean_urls"], bool):
            raise _invalid("clean_urls", "must be true or false")
        config["clean_urls"] = data["clean_urls"]
    if "headers" in data:
        config["headers"] = _headers(data["headers"])
    if "redirects" in data:
        config["redirects"] = _redirects(data["redirects"])
    if "routes" in data:
        config["routes"] = _routes(build_dir / root, data["routes"])
    if "error_page" in data:
        page = data["error_page"]
        if not isinstance(page, str) or not _file_inside(build_dir / root, page):
            raise _invalid("error_page", f"must name a file under the root ({root}), e.g. 404.html")
        config["error_page"] = page.lstrip("/")
    return config


def _invalid(key: str, what: str) -> CompileError:
    return CompileError(f'{STATIC_JSON}: "{key}" {what}')


def _root(build_dir: Path, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("root", 'must be a directory name, e.g. "public"')
    relative = value.strip().strip("/") or "."
    target = (build_dir / relative).resolve()
    base = build_dir.resolve()
    if not target.is_relative_to(base):
        raise _invalid("root", f"({value}) must be a directory inside the repository")
    if not target.is_dir():
        raise _invalid("root", f"({value}) is not a directory in the repository")
    return "." if target == base else str(target.relative_to(base))


def _file_inside(root: Path, name: str) -> bool:
    target = (root / name.lstrip("/")).resolve()
    return target.is_relative_to(root.resolve()) and target.is_file()


def _path_key(key: str, what: str) -> str:
    if not key.startswith("/"):
        raise _invalid(what, f'has the path "{key}", which must start with "/"')
    return key


def _headers(value: object) -> list[list[Any]]:
    if not isinstance(value, dict):
        raise _invalid(
            "headers", 'must map paths to headers, e.g. {"/**": {"X-Frame-Options": "DENY"}}'
        )
    result: list[list[Any]] = []
    for pattern, headers in value.items():
        _path_key(pattern, "headers")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k.strip() for k, v in headers.items()
        ):
            raise _invalid("headers", f'for "{pattern}" must map header names to text values')
        for name, text in headers.items():
            if any(c in name + text for c in "\r\n") or ":" in name:
                raise _invalid("headers", f'for "{pattern}" has an invalid header "{name}"')
        result.append([pattern, headers])
    return result


def _redirects(value: object) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise _invalid("redirects", 'must map paths to targets, e.g. {"/old": {"url": "/new"}}')
    result: dict[str, dict[str, Any]] = {}
    for path, target in value.items():
        _path_key(path, "redirects")
        if not isinstance(target, dict) or not isinstance(target.get("url"), str):
            raise _invalid("redirects", f'for "{path}" must be an object with a "url"')
        url = target["url"]
        if any(c in url for c in "\r\n") or not url:
            raise _invalid("redirects", f'for "{path}" has an invalid url')
        status = target.get("status", 301)
        if status not in REDIRECT_STATUSES or isinstance(status, bool):
            allowed = ", ".join(str(s) for s in REDIRECT_STATUSES)
            raise _invalid("redirects", f'for "{path}" has status {status!r}; use one of {allowed}')
        result[path] = {"url": url, "status": status}
    return result


def _routes(root: Path, value: object) -> list[list[str]]:
    if not isinstance(value, dict):
        raise _invalid("routes", 'must map paths to files, e.g. {"/**": "index.html"}')
    result: list[list[str]] = []
    for pattern, target in value.items():
        _path_key(pattern, "routes")
        if not isinstance(target, str) or not _file_inside(root, target):
            raise _invalid("routes", f'for "{pattern}" must name a file under the root')
        result.append([pattern, target.lstrip("/")])
    return result
