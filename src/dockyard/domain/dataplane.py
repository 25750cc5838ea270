"""Records exchanged between the control plane and the data plane (agent, router).

The control plane publishes the desired dynos and the route table; the agent reports the dynos it runs.
Each record converts to and from plain JSON so it can cross the API and be cached on disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from dockyard.types import (
    AppId,
    AppName,
    DynoName,
    DynoState,
    ProcessType,
    ReleaseVersion,
    SlugDigest,
)


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DynoReport:
        state = str(data["state"])
        if state not in ("starting", "up", "crashed", "down", "idle"):
            raise ValueError(f"unknown dyno state {state!r}")
        address = data.get("address")
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
        )


@dataclass(frozen=True)
class Route:
    """How the router treats requests for one app."""

    app_id: AppId
    app_name: AppName
    hostnames: tuple[str, ...]
    backends: tuple[str, ...] = ()
    """``host:port`` of the app's web dynos that are up."""
    maintenance: bool = False
    released: bool = True
    """False until the first release: the router answers H81."""
    web_quantity: int = 0
    """0 means the app has no web dynos scaled: the router answers H14."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["hostnames"] = list(self.hostnames)
        data["backends"] = list(self.backends)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Route:
        return cls(
            app_id=AppId(str(data["app_id"])),
            app_name=AppName(str(data["app_name"])),
            hostnames=tuple(str(h) for h in data["hostnames"]),
            backends=tuple(str(b) for b in data.get("backends", ())),
            maintenance=bool(data.get("maintenance", False)),
            released=bool(data.get("released", True)),
            web_quantity=int(data.get("web_quantity", 0)),
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
