"""Records exchanged between the control plane and the data plane (agent, router).

The control plane publishes the desired dynos and the route table; the agent reports the dynos it runs.
Each record converts to and from plain JSON so it can cross the API and be cached on disk.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from dockyard.types import (
    AppId,
    AppName,
    DynoName,
    DynoState,
    ProcessType,
    ReleaseVersion,
    SlugDigest,
)

DynoKind = Literal["formation", "one-off"]
"""``formation``: a slot of the app's formation (``web.1``); ``one-off``: ``run.1234``."""
_KINDS: dict[str, DynoKind] = {"formation": "formation", "one-off": "one-off"}


@dataclass(frozen=True)
class DesiredDyno:
    """One dyno slot the control plane wants running: ``web.2`` of release v7."""

    app_id: AppId
    app_name: AppName
    process_type: ProcessType
    index: int
    release_version: ReleaseVersion
    slug_digest: SlugDigest
    command: str
    env: Mapping[str, str]
    size: str
    generation: str = "0"
    """Changes when a restart of this dyno is requested; a dyno of another generation is replaced."""
    kind: DynoKind = "formation"
    dyno_id: str = ""
    """One-off dynos: the id the API gave the dyno; the agent starts it under this id."""
    time_to_live: float | None = None
    """One-off dynos: seconds after its start when the agent stops it."""
    attach: bool = False
    """One-off dynos: joined to a client through the rendezvous service; output goes there, not to
    the logs."""
    tty: bool = True
    """Attached one-off dynos: the client wants a terminal (echo, line editing, ``\r\n``)."""

    @property
    def name(self) -> DynoName:
        return DynoName(f"{self.process_type}.{self.index}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_id, self.name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = dict(self.env)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DesiredDyno:
        ttl = data.get("time_to_live")
        return cls(
            app_id=AppId(str(data["app_id"])),
            app_name=AppName(str(data["app_name"])),
            process_type=ProcessType(str(data["process_type"])),
            index=int(data["index"]),
            release_version=ReleaseVersion(int(data["release_version"])),
            slug_digest=SlugDigest(str(data["slug_digest"])),
            command=str(data["command"]),
            env={str(k): str(v) for k, v in cast(Mapping[str, Any], data["env"]).items()},
            size=str(data["size"]),
            generation=str(data.get("generation", "0")),
            kind=_KINDS[str(data.get("kind", "formation"))],
            dyno_id=str(data.get("dyno_id", "")),
            time_to_live=None if ttl is None else float(ttl),
            attach=bool(data.get("attach", False)),
            tty=bool(data.get("tty", True)),
        )


@dataclass(frozen=True)
class DynoReport:
    """What the agent says about one dyno it runs."""

    id: str
    app_id: AppId
    name: DynoName
    process_type: ProcessType
    release_version: ReleaseVersion
    state: DynoState
    command: str
    size: str
    started_at: str
    """ISO 8601, UTC."""
    address: str | None = None
    """``host:port`` the router forwards to, for web dynos that are up."""
    kind: DynoKind = "formation"
    next_retry_at: str | None = None
    """ISO 8601, UTC: for a crashed dyno waiting out its back-off, when the agent restarts it."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DynoReport:
        state = str(data["state"])
        if state not in ("starting", "up", "crashed", "down", "idle"):
            raise ValueError(f"unknown dyno state {state!r}")
        address = data.get("address")
        retry = data.get("next_retry_at")
        return cls(
            id=str(data["id"]),
            app_id=AppId(str(data["app_id"])),
            name=DynoName(str(data["name"])),
            process_type=ProcessType(str(data["process_type"])),
            release_version=ReleaseVersion(int(data["release_version"])),
            state=cast(DynoState, state),
            command=str(data["command"]),
            size=str(data["size"]),
            started_at=str(data["started_at"]),
            address=None if address is None else str(address),
            kind=_KINDS[str(data.get("kind", "formation"))],
            next_retry_at=None if retry is None else str(retry),
        )


@dataclass(frozen=True)
class Backend:
    """A web dyno the router may forward to: ``web.1`` at ``127.0.0.1:4001``."""

    dyno: str
    """The dyno's name, logged by the router as ``dyno=web.1``; empty when unknown (an older cache)."""
    address: str
    """``host:port``."""

    def to_json(self) -> dict[str, Any]:
        return {"dyno": self.dyno, "address": self.address}

    @classmethod
    def from_json(cls, data: object) -> Backend:
        """Also reads a bare ``"host:port"`` string, the form of route tables cached before dyno names."""
        if isinstance(data, str):
            return cls(dyno="", address=data)
        if not isinstance(data, Mapping):
            raise ValueError(f"a backend is an object or a host:port string, not {data!r}")
        entry = cast(Mapping[str, Any], data)
        return cls(dyno=str(entry.get("dyno") or ""), address=str(entry["address"]))


@dataclass(frozen=True)
class AppCertificate:
    """An app's TLS certificate (an SNI endpoint) as the router needs it: its chain and key are in
    ``<data dir>/secrets/sni-endpoints/<id>.pem``; the fingerprint changes when they do."""

    id: str
    fingerprint: str
    """Hex SHA-256 of the leaf certificate."""
    domains: tuple[str, ...]
    """The names the certificate covers (``shop.example.org``, ``*.example.org``)."""
    expires_at: str = ""
    """ISO 8601, UTC; of several certificates covering a name, the one expiring last is served."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "domains": list(self.domains),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AppCertificate:
        return cls(
            id=str(data["id"]),
            fingerprint=str(data["fingerprint"]),
            domains=tuple(str(d) for d in data.get("domains", ())),
            expires_at=str(data.get("expires_at", "")),
        )


@dataclass(frozen=True)
class Route:
    """How the router treats requests for one app."""

    app_id: AppId
    app_name: AppName
    hostnames: tuple[str, ...]
    backends: tuple[Backend, ...] = ()
    """The app's web dynos that are up."""
    maintenance: bool = False
    released: bool = True
    """False until the first release: the router answers H81."""
    web_quantity: int = 0
    """0 means the app has no web dynos scaled: the router answers H14."""
    crashed: bool = False
    """Web dynos are scaled, none is up or starting, and at least one has crashed: the router answers
    H10 at once instead of waiting for a dyno to boot."""
    error_page_url: str = ""
    """The app's own page for the router's errors (its ``ERROR_PAGE_URL`` config var), or empty."""
    maintenance_page_url: str = ""
    """The app's own maintenance page (its ``MAINTENANCE_PAGE_URL`` config var), or empty."""
    release_version: int = 0
    """The current release: the response cache forgets the app's responses when it changes."""
    cache: bool = False
    """The router caches the app's public responses (``Cache-Control: public, max-age=...``)."""
    https_redirect: int = 0
    """301 or 308: plain-HTTP requests are redirected to HTTPS; 0: they are served."""
    hsts: str = ""
    """The ``Strict-Transport-Security`` value sent on the app's HTTPS responses; empty: none."""
    connection_limit: int = 0
    """Requests in flight at once before the router answers H22; 0: the router's default."""
    certificates: tuple[AppCertificate, ...] = ()
    """The app's own TLS certificates (SNI endpoints), served for the custom domains they cover."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hostnames"] = list(self.hostnames)
        data["backends"] = [b.to_json() for b in self.backends]
        data["certificates"] = [c.to_json() for c in self.certificates]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Route:
        return cls(
            app_id=AppId(str(data["app_id"])),
            app_name=AppName(str(data["app_name"])),
            hostnames=tuple(str(h) for h in data["hostnames"]),
            backends=tuple(Backend.from_json(b) for b in data.get("backends", ())),
            maintenance=bool(data.get("maintenance", False)),
            released=bool(data.get("released", True)),
            web_quantity=int(data.get("web_quantity", 0)),
            crashed=bool(data.get("crashed", False)),
            error_page_url=str(data.get("error_page_url") or ""),
            maintenance_page_url=str(data.get("maintenance_page_url") or ""),
            release_version=int(data.get("release_version") or 0),
            cache=bool(data.get("cache", False)),
            https_redirect=int(data.get("https_redirect") or 0),
            hsts=str(data.get("hsts") or ""),
            connection_limit=int(data.get("connection_limit") or 0),
            certificates=tuple(AppCertificate.from_json(c) for c in data.get("certificates", ())),
        )


@dataclass(frozen=True)
class RouteTable:
    routes: tuple[Route, ...] = field(default_factory=tuple)

    def by_hostname(self) -> dict[str, Route]:
        return {host: route for route in self.routes for host in route.hostnames}

    def to_json(self) -> dict[str, Any]:
        return {"routes": [r.to_json() for r in self.routes]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RouteTable:
        return cls(tuple(Route.from_json(r) for r in data.get("routes", ())))


def attach_secret(key: str, dyno_id: str) -> str:
    """The secret of an attached one-off dyno's ``attach_url``: the dyno's id and a MAC of it under
    the rendezvous key (``<data dir>/secrets/rendezvous-key``), so the rendezvous service can check
    it and find the dyno without any stored state."""
    mac = hmac.new(key.encode(), f"rendezvous:{dyno_id}".encode(), hashlib.sha256).hexdigest()
    return f"{dyno_id}.{mac}"


def dyno_of_attach_secret(key: str, secret: str) -> str | None:
    """The dyno id an ``attach_secret`` was made for, or None when the secret is not genuine."""
    dyno_id, _, _ = secret.rpartition(".")
    if not dyno_id or not hmac.compare_digest(attach_secret(key, dyno_id), secret):
        return None
    return dyno_id
