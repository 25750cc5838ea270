"""Typed client for the Platform API (Heroku Platform API v3 paths and JSON shapes).

Each resource is a frozen dataclass parsed from the API's JSON; ``raw`` keeps that JSON untouched so
the CLI can print it with ``--json``. List calls follow ``206 Partial Content`` answers by sending
the request again with ``Range`` set to the ``Next-Range`` header until the API answers ``200``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from dockyard.client.http import ApiClient
from dockyard.errors import ApiError
from dockyard.types import AccountId, AppId, AppName, DynoName, ProcessType, ReleaseVersion

Json = dict[str, Any]
LogSource = Literal["app", "heroku"]

MAX_PAGES = 1000
"""A list longer than this many pages means the server is looping; stop instead of spinning."""


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else str(value)


def _nested(data: Mapping[str, Any], key: str, inner: str) -> str | None:
    value = data.get(key)
    if isinstance(value, Mapping):
        return _opt_str(value, inner)
    return None


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def _expect_object(body: object, what: str) -> Json:
    if not isinstance(body, dict):
        raise ApiError(
            f"the API sent {what} that is not a JSON object", error_id="bad_response", status=200
        )
    return body


def _segment(value: str | int) -> str:
    """One URL path segment, escaped so that names cannot reach another path."""
    return quote(str(value), safe="")


@dataclass(frozen=True)
class Account:
    id: AccountId
    email: str
    name: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Account:
        return cls(AccountId(_str(data, "id")), _str(data, "email"), _opt_str(data, "name"), data)


@dataclass(frozen=True)
class App:
    id: AppId
    name: AppName
    owner_email: str | None
    web_url: str
    git_url: str
    maintenance: bool
    stack: str | None
    released_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> App:
        return cls(
            id=AppId(_str(data, "id")),
            name=AppName(_str(data, "name")),
            owner_email=_nested(data, "owner", "email"),
            web_url=_str(data, "web_url"),
            git_url=_str(data, "git_url"),
            maintenance=bool(data.get("maintenance")),
            stack=_nested(data, "stack", "name"),
            released_at=_time(data, "released_at"),
            created_at=_time(data, "created_at"),
            updated_at=_time(data, "updated_at"),
            raw=data,
        )


@dataclass(frozen=True)
class Release:
    id: str
    version: ReleaseVersion
    description: str
    status: str
    current: bool
    user_email: str | None
    slug_id: str | None
    created_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Release:
        return cls(
            id=_str(data, "id"),
            version=ReleaseVersion(_int(data, "version")),
            description=_str(data, "description"),
            status=_str(data, "status") or "succeeded",
            current=bool(data.get("current")),
            user_email=_nested(data, "user", "email"),
            slug_id=_nested(data, "slug", "id"),
            created_at=_time(data, "created_at"),
            raw=data,
        )


@dataclass(frozen=True)
class Formation:
    id: str
    type: ProcessType
    quantity: int
    size: str
    command: str
    updated_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Formation:
        return cls(
            id=_str(data, "id"),
            type=ProcessType(_str(data, "type")),
            quantity=_int(data, "quantity"),
            size=_str(data, "size") or "standard-1x",
            command=_str(data, "command"),
            updated_at=_time(data, "updated_at"),
            raw=data,
        )


@dataclass(frozen=True)
class FormationUpdate:
    """One entry of ``PATCH /apps/{app}/formation``; ``None`` leaves that field as it is."""

    type: str
    quantity: int | None = None
    size: str | None = None

    def to_json(self) -> Json:
        body: Json = {"type": self.type}
        if self.quantity is not None:
            body["quantity"] = self.quantity
        if self.size is not None:
            body["size"] = self.size
        return body


@dataclass(frozen=True)
class Dyno:
    id: str
    name: DynoName
    type: ProcessType
    state: str
    command: str
    size: str
    release_version: ReleaseVersion | None
    created_at: datetime | None
    updated_at: datetime | None
    raw: Json = field(repr=False, compare=False)
    next_retry_at: datetime | None = None
    """For a crashed dyno in its restart back-off: when the platform tries again."""

    @classmethod
    def from_json(cls, data: Json) -> Dyno:
        release = data.get("release")
        version = (
            ReleaseVersion(_int(release, "version"))
            if isinstance(release, Mapping) and release.get("version") is not None
            else None
        )
        return cls(
            id=_str(data, "id"),
            name=DynoName(_str(data, "name")),
            type=ProcessType(_str(data, "type")),
            state=_str(data, "state"),
            command=_str(data, "command"),
            size=_str(data, "size") or "standard-1x",
            release_version=version,
            created_at=_time(data, "created_at"),
            updated_at=_time(data, "updated_at"),
            raw=data,
            next_retry_at=_time(data, "next_retry_at"),
        )


@dataclass(frozen=True)
class Domain:
    id: str
    hostname: str
    kind: str
    cname: str | None
    status: str | None
    created_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Domain:
        return cls(
            id=_str(data, "id"),
            hostname=_str(data, "hostname"),
            kind=_str(data, "kind") or "custom",
            cname=_opt_str(data, "cname"),
            status=_opt_str(data, "status"),
            created_at=_time(data, "created_at"),
            raw=data,
        )


@dataclass(frozen=True)
class SniEndpoint:
    """An app's own TLS certificate (Heroku's SNI endpoint)."""

    id: str
    name: str
    cert_domains: tuple[str, ...]
    domains: tuple[str, ...]
    """Ids of the app's domains the certificate serves."""
    subject: str
    issuer: str
    starts_at: datetime | None
    expires_at: datetime | None
    ca_signed: bool
    self_signed: bool
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> SniEndpoint:
        cert = data.get("ssl_cert")
        ssl_cert: Mapping[str, Any] = cert if isinstance(cert, Mapping) else {}
        names = ssl_cert.get("cert_domains")
        ids = data.get("domains")
        return cls(
            id=_str(data, "id"),
            name=_str(data, "name"),
            cert_domains=tuple(str(n) for n in names) if isinstance(names, list) else (),
            domains=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
            subject=_str(ssl_cert, "subject"),
            issuer=_str(ssl_cert, "issuer"),
            starts_at=_time(ssl_cert, "starts_at"),
            expires_at=_time(ssl_cert, "expires_at"),
            ca_signed=ssl_cert.get("ca_signed?") is True,
            self_signed=ssl_cert.get("self_signed?") is True,
            raw=data,
        )


@dataclass(frozen=True)
class Build:
    id: str
    status: str
    user_email: str | None
    release_id: str | None
    source_version: str | None
    output_stream_url: str | None
    created_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Build:
        return cls(
            id=_str(data, "id"),
            status=_str(data, "status"),
            user_email=_nested(data, "user", "email"),
            release_id=_nested(data, "release", "id"),
            source_version=_nested(data, "source_blob", "version"),
            output_stream_url=_opt_str(data, "output_stream_url"),
            created_at=_time(data, "created_at"),
            raw=data,
        )


@dataclass(frozen=True)
class BuildpackInstallation:
    url: str
    name: str
    ordinal: int
    """Counts from 0, as the API sends it."""
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> BuildpackInstallation:
        return cls(
            url=(_nested(data, "buildpack", "url") or "").removeprefix("urn:buildpack:"),
            name=_nested(data, "buildpack", "name") or "",
            ordinal=_int(data, "ordinal"),
            raw=data,
        )


@dataclass(frozen=True)
class Source:
    """An upload slot from ``POST /sources``: ``PUT`` a tarball to ``put_url``, then build from
    ``get_url``."""

    get_url: str
    put_url: str
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Source:
        return cls(
            get_url=_nested(data, "source_blob", "get_url") or "",
            put_url=_nested(data, "source_blob", "put_url") or "",
            raw=data,
        )


@dataclass(frozen=True)
class SshKey:
    id: str
    fingerprint: str
    comment: str
    public_key: str
    email: str | None
    created_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @property
    def type(self) -> str:
        """``ssh-ed25519``, ``ecdsa-sha2-nistp256``, ``ssh-rsa``…"""
        return self.public_key.split(" ", 1)[0]

    @classmethod
    def from_json(cls, data: Json) -> SshKey:
        return cls(
            id=_str(data, "id"),
            fingerprint=_str(data, "fingerprint"),
            comment=_str(data, "comment"),
            public_key=_str(data, "public_key"),
            email=_opt_str(data, "email"),
            created_at=_time(data, "created_at"),
            raw=data,
        )


@dataclass(frozen=True)
class LogDrain:
    id: str
    url: str
    token: str
    created_at: datetime | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> LogDrain:
        return cls(
            id=_str(data, "id"),
            url=_str(data, "url"),
            token=_str(data, "token"),
            created_at=_time(data, "created_at"),
            raw=data,
        )


class PlatformClient:
    """One method per Platform API endpoint the CLI uses; every failure is a ``DockyardError``."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    # -- plumbing -------------------------------------------------------------------------------

    def _object(self, method: str, path: str, body: Json | None = None) -> Json:
        response = self.api.request(method, path, json=body)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise ApiError(
                f"the API answered {method} {path} with a body that is not JSON",
                error_id="bad_response",
                status=response.status_code,
            ) from exc
        return _expect_object(data, f"an answer to {method} {path}")

    def _list(self, path: str) -> list[Json]:
        """Every item of a list endpoint, following ``Next-Range`` through ``206`` answers."""
        items: list[Json] = []
        next_range: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            headers = {"Range": next_range} if next_range else None
            response = self.api.request("GET", path, headers=headers)
            try:
                page = response.json()
            except ValueError as exc:
                raise ApiError(
                    f"the API answered GET {path} with a body that is not JSON",
                    error_id="bad_response",
                    status=response.status_code,
                ) from exc
            if not isinstance(page, list):
                raise ApiError(
                    f"the API answered GET {path} with something other than a list",
                    error_id="bad_response",
                    status=response.status_code,
                )
            items.extend(_expect_object(item, f"an item of GET {path}") for item in page)
            next_range = response.headers.get("Next-Range")
            if response.status_code != 206 or not next_range:
                return items
            if next_range in seen:
                raise ApiError(
                    f"the API sent the same Next-Range twice for GET {path}; stopping",
                    error_id="bad_response",
                    status=206,
                )
            seen.add(next_range)
        raise ApiError(
            f"GET {path} returned more than {MAX_PAGES} pages; stopping",
            error_id="bad_response",
            status=206,
        )

    @staticmethod
    def _app(app: str) -> str:
        return f"/apps/{_segment(app)}"

    # -- account --------------------------------------------------------------------------------

    def account(self) -> Account:
        return Account.from_json(self._object("GET", "/account"))

    def keys(self) -> list[SshKey]:
        return [SshKey.from_json(item) for item in self._list("/account/keys")]

    def add_key(self, public_key: str) -> SshKey:
        body: Json = {"public_key": public_key}
        return SshKey.from_json(self._object("POST", "/account/keys", body))

    def remove_key(self, key_id: str) -> SshKey:
        """Delete a key by its id (fingerprints hold ``/``, which a path segment cannot carry)."""
        return SshKey.from_json(self._object("DELETE", f"/account/keys/{_segment(key_id)}"))

    # -- apps -----------------------------------------------------------------------------------

    def apps(self) -> list[App]:
        return [App.from_json(item) for item in self._list("/apps")]

    def app(self, app: str) -> App:
        return App.from_json(self._object("GET", self._app(app)))

    def create_app(self, name: str | None = None) -> App:
        body: Json = {} if name is None else {"name": name}
        return App.from_json(self._object("POST", "/apps", body))

    def rename_app(self, app: str, new_name: str) -> App:
        return App.from_json(self._object("PATCH", self._app(app), {"name": new_name}))

    def set_maintenance(self, app: str, on: bool) -> App:
        return App.from_json(self._object("PATCH", self._app(app), {"maintenance": on}))

    def delete_app(self, app: str) -> App:
        """Soft-delete ``app``; the API wants the name typed again, which the CLI asked for."""
        return App.from_json(
            self._object("DELETE", f"{self._app(app)}?confirm={quote(app, safe='')}")
        )

    # -- config vars ----------------------------------------------------------------------------

    def config_vars(self, app: str) -> dict[str, str]:
        data = self._object("GET", f"{self._app(app)}/config-vars")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}

    def update_config_vars(self, app: str, changes: Mapping[str, str | None]) -> dict[str, str]:
        """Set keys to values; a ``None`` value unsets the key. Returns the whole new config."""
        data = self._object("PATCH", f"{self._app(app)}/config-vars", dict(changes))
        return {str(k): "" if v is None else str(v) for k, v in data.items()}

    # -- releases -------------------------------------------------------------------------------

    def releases(self, app: str) -> list[Release]:
        """All releases, oldest first."""
        releases = [Release.from_json(item) for item in self._list(f"{self._app(app)}/releases")]
        return sorted(releases, key=lambda r: r.version)

    def latest_release(self, app: str) -> Release | None:
        releases = self.releases(app)
        return releases[-1] if releases else None

    def release(self, app: str, id_or_version: str | int) -> Release:
        path = f"{self._app(app)}/releases/{_segment(id_or_version)}"
        return Release.from_json(self._object("GET", path))

    def rollback(self, app: str, release: str | int) -> Release:
        """Create a new release from an earlier one (id or version); returns the new release."""
        body: Json = {"release": str(release)}
        return Release.from_json(self._object("POST", f"{self._app(app)}/releases", body))

    # -- formation and dynos --------------------------------------------------------------------

    def formation(self, app: str) -> list[Formation]:
        return [Formation.from_json(item) for item in self._list(f"{self._app(app)}/formation")]

    def scale(self, app: str, updates: Sequence[FormationUpdate]) -> list[Formation]:
        body: Json = {"updates": [update.to_json() for update in updates]}
        response = self.api.request("PATCH", f"{self._app(app)}/formation", json=body)
        data = response.json() if response.content else []
        if not isinstance(data, list):
            raise ApiError(
                "the API answered PATCH formation with something other than a list",
                error_id="bad_response",
                status=response.status_code,
            )
        return [Formation.from_json(_expect_object(item, "a formation")) for item in data]

    def dynos(self, app: str) -> list[Dyno]:
        return [Dyno.from_json(item) for item in self._list(f"{self._app(app)}/dynos")]

    def restart_all(self, app: str) -> None:
        self.api.request("DELETE", f"{self._app(app)}/dynos")

    def restart(self, app: str, dyno_or_type: str) -> None:
        """Restart one dyno (``web.1``) or all dynos of a process type (``web``), as Heroku does."""
        self.api.request("DELETE", f"{self._app(app)}/dynos/{_segment(dyno_or_type)}")

    def create_dyno(
        self,
        app: str,
        command: str,
        *,
        attach: bool,
        env: Mapping[str, str] | None = None,
        size: str | None = None,
        type: str | None = None,
        time_to_live: int | None = None,
        force_no_tty: bool = False,
    ) -> Dyno:
        """Run a one-off dyno; for an attached one, ``raw["attach_url"]`` is where to connect."""
        body: Json = {"command": command, "attach": attach, "env": dict(env or {})}
        if size is not None:
            body["size"] = size
        if type is not None:
            body["type"] = type
        if time_to_live is not None:
            body["time_to_live"] = time_to_live
        if force_no_tty:
            body["force_no_tty"] = True
        return Dyno.from_json(self._object("POST", f"{self._app(app)}/dynos", body))

    def stop_dyno(self, app: str, dyno: str) -> None:
        """Stop a one-off dyno (a formation dyno is restarted, as on Heroku)."""
        self.api.request("POST", f"{self._app(app)}/dynos/{_segment(dyno)}/actions/stop")

    # -- domains --------------------------------------------------------------------------------

    def domains(self, app: str) -> list[Domain]:
        return [Domain.from_json(item) for item in self._list(f"{self._app(app)}/domains")]

    def add_domain(self, app: str, hostname: str) -> Domain:
        body: Json = {"hostname": hostname, "sni_endpoint": None}
        return Domain.from_json(self._object("POST", f"{self._app(app)}/domains", body))

    def remove_domain(self, app: str, hostname: str) -> Domain:
        path = f"{self._app(app)}/domains/{_segment(hostname)}"
        return Domain.from_json(self._object("DELETE", path))

    # -- SNI endpoints (certs) --------------------------------------------------------------------

    def sni_endpoints(self, app: str) -> list[SniEndpoint]:
        return [SniEndpoint.from_json(i) for i in self._list(f"{self._app(app)}/sni-endpoints")]

    def sni_endpoint(self, app: str, endpoint: str) -> SniEndpoint:
        path = f"{self._app(app)}/sni-endpoints/{_segment(endpoint)}"
        return SniEndpoint.from_json(self._object("GET", path))

    def add_sni_endpoint(self, app: str, certificate_chain: str, private_key: str) -> SniEndpoint:
        body = {"certificate_chain": certificate_chain, "private_key": private_key}
        return SniEndpoint.from_json(self._object("POST", f"{self._app(app)}/sni-endpoints", body))

    def update_sni_endpoint(
        self, app: str, endpoint: str, certificate_chain: str, private_key: str
    ) -> SniEndpoint:
        path = f"{self._app(app)}/sni-endpoints/{_segment(endpoint)}"
        body = {"certificate_chain": certificate_chain, "private_key": private_key}
        return SniEndpoint.from_json(self._object("PATCH", path, body))

    def remove_sni_endpoint(self, app: str, endpoint: str) -> SniEndpoint:
        path = f"{self._app(app)}/sni-endpoints/{_segment(endpoint)}"
        return SniEndpoint.from_json(self._object("DELETE", path))

    # -- builds ---------------------------------------------------------------------------------

    def builds(self, app: str) -> list[Build]:
        return [Build.from_json(item) for item in self._list(f"{self._app(app)}/builds")]

    def build(self, app: str, build_id: str) -> Build:
        return Build.from_json(self._object("GET", f"{self._app(app)}/builds/{_segment(build_id)}"))

    def create_build(
        self,
        app: str,
        url: str,
        *,
        checksum: str | None = None,
        version: str | None = None,
        buildpacks: Sequence[str] | None = None,
    ) -> Build:
        """Start a build of the tarball at ``url``; it runs in the background (status ``pending``)."""
        blob: Json = {"url": url}
        if checksum is not None:
            blob["checksum"] = checksum
        if version is not None:
            blob["version"] = version
        body: Json = {"source_blob": blob}
        if buildpacks is not None:
            body["buildpacks"] = [{"url": u} for u in buildpacks]
        return Build.from_json(self._object("POST", f"{self._app(app)}/builds", body))

    def build_output(self, output_stream_url: str) -> Iterator[str]:
        """The lines of a build's output as they are produced, until the build ends."""
        for line in self.api.stream_lines("GET", output_stream_url):
            yield str(line)

    def purge_build_cache(self, app: str) -> None:
        self.api.request("DELETE", f"{self._app(app)}/build-cache")

    def create_source(self) -> Source:
        return Source.from_json(self._object("POST", "/sources"))

    # -- buildpack installations ----------------------------------------------------------------

    def buildpacks(self, app: str) -> list[BuildpackInstallation]:
        """The app's buildpacks in order (an empty list: detected at each build)."""
        path = f"{self._app(app)}/buildpack-installations"
        found = [BuildpackInstallation.from_json(item) for item in self._list(path)]
        return sorted(found, key=lambda b: b.ordinal)

    def set_buildpacks(self, app: str, urls: Sequence[str]) -> list[BuildpackInstallation]:
        """Replace the app's whole list with ``urls``, in order."""
        body: Json = {"updates": [{"buildpack": url} for url in urls]}
        path = f"{self._app(app)}/buildpack-installations"
        response = self.api.request("PUT", path, json=body)
        data = response.json() if response.content else []
        if not isinstance(data, list):
            raise ApiError(
                "the API answered PUT buildpack-installations with something other than a list",
                error_id="bad_response",
                status=response.status_code,
            )
        found = [
            BuildpackInstallation.from_json(_expect_object(item, "a buildpack installation"))
            for item in data
        ]
        return sorted(found, key=lambda b: b.ordinal)

    # -- logs -----------------------------------------------------------------------------------

    def create_log_session(
        self,
        app: str,
        *,
        lines: int | None = None,
        tail: bool = False,
        source: LogSource | None = None,
        dyno: str | None = None,
        since: str | None = None,
        until: str | None = None,
        grep: str | None = None,
    ) -> str:
        """Open a log session and return its one-time ``logplex_url``. ``since``/``until`` (a time
        or an age such as ``2h``) search the history; ``grep`` keeps lines containing a text."""
        body: Json = {"tail": tail}
        optional = {
            "lines": lines,
            "source": source,
            "dyno": dyno,
            "since": since,
            "until": until,
            "grep": grep,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        data = self._object("POST", f"{self._app(app)}/log-sessions", body)
        url = data.get("logplex_url")
        if not isinstance(url, str) or not url:
            raise ApiError(
                "the API opened a log session without a logplex_url",
                error_id="bad_response",
                status=201,
            )
        return url

    def log_lines(self, logplex_url: str) -> Iterator[str]:
        """The lines of a log session, as they arrive."""
        for line in self.api.stream_lines("GET", logplex_url):
            yield str(line)

    # -- log drains -----------------------------------------------------------------------------

    def drains(self, app: str) -> list[LogDrain]:
        return [LogDrain.from_json(item) for item in self._list(f"{self._app(app)}/log-drains")]

    def add_drain(self, app: str, url: str) -> LogDrain:
        body: Json = {"url": url}
        return LogDrain.from_json(self._object("POST", f"{self._app(app)}/log-drains", body))

    def remove_drain(self, app: str, url_or_token: str) -> LogDrain:
        """Remove a drain by its URL, token or id."""
        path = f"{self._app(app)}/log-drains/{_segment(url_or_token)}"
        return LogDrain.from_json(self._object("DELETE", path))
