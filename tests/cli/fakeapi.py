"""A small in-memory Platform API (Heroku v3 shapes) served through ``httpx.MockTransport``.

It records every request so tests can assert what the CLI sent, and can paginate its lists with
``Range``/``Next-Range`` to prove that the client follows them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from dockyard._util.clock import FakeClock
from dockyard.cli.context import CliContext
from dockyard.client.http import ApiClient

API_URL = "http://localhost:5000"
API_KEY = "key-0123456789"
EMAIL = "dev@example.com"
STAMP = "2026-01-01T11:58:00Z"

Json = dict[str, Any]


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeApi:
    api_url: str = API_URL
    key: str = API_KEY
    email: str = EMAIL
    page_size: int | None = None
    """When set, list endpoints answer 206 with a Next-Range header after this many items."""
    requests: list[Recorded] = field(default_factory=list)
    apps: dict[str, Json] = field(default_factory=dict)
    config: dict[str, dict[str, str]] = field(default_factory=dict)
    releases: dict[str, list[Json]] = field(default_factory=dict)
    formation: dict[str, list[Json]] = field(default_factory=dict)
    dynos: dict[str, list[Json]] = field(default_factory=dict)
    domains: dict[str, list[Json]] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    errors: dict[tuple[str, str], tuple[int, Json]] = field(default_factory=dict)
    """(method, path) → (status, body) to answer instead of the normal behaviour."""

    # -- set-up ---------------------------------------------------------------------------------

    def add_app(self, name: str, *, owner: str | None = None) -> Json:
        app = {
            "id": f"id-{name}",
            "name": name,
            "owner": {"email": owner or self.email, "id": "acct-1"},
            "web_url": f"http://{name}.dockyard.localhost:8080/",
            "git_url": f"{self.api_url}/{name}.git",
            "maintenance": False,
            "released_at": STAMP,
            "created_at": STAMP,
            "updated_at": STAMP,
            "stack": {"id": "stack-1", "name": "heroku-24"},
        }
        self.apps[name] = app
        self.config[name] = {}
        self.releases[name] = []
        self.formation[name] = []
        self.dynos[name] = []
        self.domains[name] = [self._domain(name, f"{name}.dockyard.localhost", "heroku")]
        return app

    def add_release(self, app: str, description: str, status: str = "succeeded") -> Json:
        version = len(self.releases[app]) + 1
        release = {
            "id": f"rel-{app}-{version}",
            "version": version,
            "description": description,
            "status": status,
            "current": False,
            "created_at": STAMP,
            "updated_at": STAMP,
            "user": {"email": self.email, "id": "acct-1"},
            "slug": {"id": f"slug-{version}"},
        }
        self.releases[app].append(release)
        succeeded = [r for r in self.releases[app] if r["status"] == "succeeded"]
        for r in self.releases[app]:
            r["current"] = bool(succeeded) and r is succeeded[-1]
        return release

    def add_process(self, app: str, ptype: str, command: str, quantity: int = 1) -> None:
        self.formation[app].append(
            {
                "id": f"form-{ptype}",
                "type": ptype,
                "quantity": quantity,
                "size": "Standard-1X",
                "command": command,
                "updated_at": STAMP,
            }
        )
        for n in range(1, quantity + 1):
            self.dynos[app].append(
                {
                    "id": f"dyno-{ptype}-{n}",
                    "name": f"{ptype}.{n}",
                    "type": ptype,
                    "state": "up",
                    "command": command,
                    "size": "Standard-1X",
                    "release": {"version": len(self.releases[app])},
                    "created_at": STAMP,
                    "updated_at": STAMP,
                }
            )

    def _domain(self, app: str, hostname: str, kind: str) -> Json:
        return {
            "id": f"dom-{hostname}",
            "hostname": hostname,
            "kind": kind,
            "cname": None if kind == "heroku" else f"{app}.dockyard.localhost",
            "status": "succeeded",
            "created_at": STAMP,
            "sni_endpoint": None,
        }

    # -- what tests look at ---------------------------------------------------------------------

    def sent(self, method: str | None = None) -> list[tuple[str, str, Any]]:
        """(method, path, body) of the requests received, optionally only those of one method."""
        return [(r.method, r.path, r.body) for r in self.requests if method in (None, r.method)]

    def writes(self) -> list[tuple[str, str, Any]]:
        return [s for s in self.sent() if s[0] != "GET"]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- the server -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append(Recorded(request.method, path, body, dict(request.headers)))
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _error(401, "unauthorized", "Invalid credentials provided.")
        if (request.method, path) in self.errors:
            status, payload = self.errors[(request.method, path)]
            return httpx.Response(status, json=payload)
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return handler(request, body, *match.groups())
        return _error(404, "not_found", f"Couldn't find that route: {request.method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        app = r"/apps/([^/]+)"
        return [
            ("GET", r"/account", lambda r, b: _ok({"email": self.email, "id": "acct-1"})),
            ("GET", r"/apps", lambda r, b: self._list(r, list(self.apps.values()))),
            ("POST", r"/apps", self._create_app),
            ("GET", app, lambda r, b, a: _ok(self._app(a))),
            ("PATCH", app, self._update_app),
            ("DELETE", app, self._delete_app),
            ("GET", app + r"/config-vars", lambda r, b, a: _ok(self._config(a))),
            ("PATCH", app + r"/config-vars", self._patch_config),
            ("GET", app + r"/releases", lambda r, b, a: self._list(r, self._releases(a))),
            ("GET", app + r"/releases/([^/]+)", self._release),
            ("POST", app + r"/releases", self._rollback),
            ("GET", app + r"/formation", lambda r, b, a: self._list(r, self._formation(a))),
            ("PATCH", app + r"/formation", self._scale),
            ("GET", app + r"/dynos", lambda r, b, a: self._list(r, self._dynos(a))),
            ("DELETE", app + r"/dynos", lambda r, b, a: _ok({}, 202)),
            ("DELETE", app + r"/dynos/([^/]+)", lambda r, b, a, d: _ok({}, 202)),
            ("POST", app + r"/dynos/([^/]+)/actions/stop", lambda r, b, a, d: _ok({}, 202)),
            ("GET", app + r"/domains", lambda r, b, a: self._list(r, self._domains(a))),
            ("POST", app + r"/domains", self._add_domain),
            ("DELETE", app + r"/domains/([^/]+)", self._remove_domain),
            ("GET", app + r"/builds", lambda r, b, a: self._list(r, [])),
            ("POST", app + r"/log-sessions", self._log_session),
            ("GET", r"/log-sessions/([^/]+)", self._stream_logs),
        ]

    def _list(self, request: httpx.Request, items: list[Json]) -> httpx.Response:
        if self.page_size is None:
            return _ok(items)
        start = 0
        range_header = request.headers.get("Range", "")
        match = re.match(r"id \](\d+)\.\.", range_header)
        if match:
            start = int(match.group(1))
        page = items[start : start + self.page_size]
        end = start + len(page)
        if end >= len(items):
            return _ok(page)
        return httpx.Response(
            206, json=page, headers={"Next-Range": f"id ]{end}..; max={self.page_size}"}
        )

    def _app(self, name: str) -> Json:
        if name not in self.apps:
            raise _NotFound(f"Couldn't find that app: {name}")
        return self.apps[name]

    def _config(self, name: str) -> dict[str, str]:
        self._app(name)
        return self.config[name]

    def _releases(self, name: str) -> list[Json]:
        self._app(name)
        return self.releases[name]

    def _formation(self, name: str) -> list[Json]:
        self._app(name)
        return self.formation[name]

    def _dynos(self, name: str) -> list[Json]:
        self._app(name)
        return self.dynos[name]

    def _domains(self, name: str) -> list[Json]:
        self._app(name)
        return self.domains[name]

    def _create_app(self, request: httpx.Request, body: Json | None) -> httpx.Response:
        name = (body or {}).get("name") or "sleepy-meadow-1234"
        if name in self.apps:
            return _error(422, "invalid_params", "Name is already taken")
        return _ok(self.add_app(name), 201)

    def _update_app(self, request: httpx.Request, body: Json, name: str) -> httpx.Response:
        app = self._app(name)
        if "name" in body:
            new = body["name"]
            self.apps[new] = self.apps.pop(name)
            self.config[new] = self.config.pop(name)
            for table in (self.releases, self.formation, self.dynos, self.domains):
                table[new] = table.pop(name)
            app.update(
                name=new, git_url=f"{self.api_url}/{new}.git", web_url=f"http://{new}.example/"
            )
        if "maintenance" in body:
            app["maintenance"] = bool(body["maintenance"])
        return _ok(app)

    def _delete_app(self, request: httpx.Request, body: Any, name: str) -> httpx.Response:
        app = self._app(name)
        del self.apps[name]
        return _ok(app)

    def _patch_config(self, request: httpx.Request, body: Json, name: str) -> httpx.Response:
        config = self._config(name)
        for key, value in body.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        self.add_release(name, f"Update config vars {', '.join(sorted(body))}")
        return _ok(config)

    def _release(self, request: httpx.Request, body: Any, name: str, ref: str) -> httpx.Response:
        for release in self._releases(name):
            if ref in (release["id"], str(release["version"]), f"v{release['version']}"):
                return _ok(release)
        return _error(404, "not_found", f"Couldn't find that release: {ref}")

    def _rollback(self, request: httpx.Request, body: Json, name: str) -> httpx.Response:
        ref = str(body["release"])
        target = next(
            (r for r in self._releases(name) if ref in (r["id"], str(r["version"]))), None
        )
        if target is None:
            return _error(404, "not_found", f"Couldn't find that release: {ref}")
        return _ok(self.add_release(name, f"Rollback to v{target['version']}"), 201)

    def _scale(self, request: httpx.Request, body: Json, name: str) -> httpx.Response:
        entries = {f["type"]: f for f in self._formation(name)}
        for update in body["updates"]:
            entry = entries.get(update["type"])
            if entry is None:
                return _error(
                    404, "not_found", f"Couldn't find that process type: {update['type']}"
                )
            if "quantity" in update:
                entry["quantity"] = update["quantity"]
            if "size" in update:
                entry["size"] = update["size"]
        return _ok(list(entries.values()))

    def _add_domain(self, request: httpx.Request, body: Json, name: str) -> httpx.Response:
        domain = self._domain(name, body["hostname"], "custom")
        self._domains(name).append(domain)
        return _ok(domain, 201)

    def _remove_domain(
        self, request: httpx.Request, body: Any, name: str, host: str
    ) -> httpx.Response:
        for domain in self._domains(name):
            if domain["hostname"] == host:
                self.domains[name].remove(domain)
                return _ok(domain)
        return _error(404, "not_found", f"Couldn't find that domain: {host}")

    def _log_session(self, request: httpx.Request, body: Json, name: str) -> httpx.Response:
        self._app(name)
        return _ok({"id": "ls-1", "logplex_url": f"{self.api_url}/log-sessions/ls-1"}, 201)

    def _stream_logs(self, request: httpx.Request, body: Any, session: str) -> httpx.Response:
        text = "".join(f"{line}\n" for line in self.log_lines)
        return httpx.Response(200, text=text, headers={"Content-Type": "text/plain"})


class _NotFound(Exception):
    pass


def _ok(payload: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload)


def _error(status: int, error_id: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"id": error_id, "message": message})


def _catching(handle: Callable[[httpx.Request], httpx.Response]) -> Callable[..., httpx.Response]:
    def wrapped(request: httpx.Request) -> httpx.Response:
        try:
            return handle(request)
        except _NotFound as exc:
            return _error(404, "not_found", str(exc))

    return wrapped


def make_context(fake: FakeApi, **overrides: Any) -> CliContext:
    """A CLI context wired to ``fake``, with a fixed clock (2026-01-01 12:00 UTC) and UTC times."""
    handler = _catching(fake.handle)
    options: dict[str, Any] = {
        "env": {},
        "api_factory": lambda url, key: ApiClient(url, key, transport=httpx.MockTransport(handler)),
        "clock": FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)),
        "timezone": UTC,
        "terminal": False,
    }
    options.update(overrides)
    return CliContext(**options)
