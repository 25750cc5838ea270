"""The ``Runtime`` protocol: start a dyno from a slug, stop it, say what runs.

A runtime does not decide *what* should run (the agent does); it only carries out ``start`` and ``stop`` and
reports facts. Dynos outlive the agent: a restarted agent calls ``list()`` and adopts what is still running.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from dockyard.errors import InvalidError
from dockyard.settings import Settings

ProcessState = Literal["running", "exited"]


@dataclass(frozen=True)
class DynoSpec:
    """Everything a runtime needs to start one dyno."""

    id: str
    """Unique per dyno instance (a UUID); the runtime keys its state by it."""
    app_id: str
    app_name: str
    name: str
    """``web.1``; also ``$DYNO``."""
    process_type: str
    release_version: int
    slug_digest: str
    command: str
    env: Mapping[str, str]
    """Config vars plus platform variables; the runtime adds ``PORT`` and ``DYNO`` itself."""
    size: str
    generation: str = "0"
    labels: Mapping[str, str] = field(default_factory=dict)
    """Opaque values the agent wants back from ``list()``."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, for runtimes that keep their dynos' specs on disk."""
        data = {f.name: getattr(self, f.name) for f in fields(DynoSpec)}
        data["env"] = dict(self.env)
        data["labels"] = dict(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DynoSpec:
        return cls(
            id=str(data["id"]),
            app_id=str(data["app_id"]),
            app_name=str(data["app_name"]),
            name=str(data["name"]),
            process_type=str(data["process_type"]),
            release_version=int(data["release_version"]),
            slug_digest=str(data["slug_digest"]),
            command=str(data["command"]),
            env={str(k): str(v) for k, v in data["env"].items()},
            size=str(data["size"]),
            generation=str(data.get("generation", "0")),
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
        )


@dataclass(frozen=True)
class RunningDyno:
    spec: DynoSpec
    port: int
    """The ``$PORT`` given to the dyno."""
    address: str
    """``host:port`` where the router reaches the dyno; empty when this host cannot reach it (a ``runc``
    dyno in a network namespace of its own that no network is attached to yet)."""
    started_at: datetime
    state: ProcessState
    exit_code: int | None = None
    output_path: Path | None = None
    """A file the dyno's stdout and stderr are appended to, if the runtime keeps one."""


class Runtime(Protocol):
    name: str
    sandboxed: bool
    """False for runtimes that give no isolation (``process``); reported loudly at start."""

    def start(self, spec: DynoSpec) -> RunningDyno:
        """Start the dyno and return at once; raises ``DynoError`` when it cannot even start."""
        ...

    def stop(self, dyno_id: str, *, timeout: float) -> None:
        """SIGTERM to every process of the dyno, SIGKILL after ``timeout`` seconds; then forget it.
        Blocks until the dyno is gone. Unknown ids are ignored."""
        ...

    def list(self) -> list[RunningDyno]:
        """Every dyno this runtime knows of on this host, running or exited (until ``stop`` forgets it)."""
        ...

    def release_unused(self, digests_in_use: set[str]) -> None:
        """Drop cached slug mounts or extractions that no dyno uses any more."""
        ...


RUNTIME_BACKENDS: dict[str, str] = {
    "process": "dockyard.runtime.process:ProcessRuntime",
    "runc": "dockyard.runtime.runc:RuncRuntime",
}
"""Backends by name, as ``module:Class``; nothing is discovered by scanning packages."""


def load_runtime(settings: Settings) -> Runtime:
    """The runtime named by ``agent.runtime``, from the ``RUNTIME_BACKENDS`` table."""
    target = RUNTIME_BACKENDS.get(settings.agent.runtime)
    if target is None:
        raise InvalidError(
            f"unknown runtime {settings.agent.runtime!r}: set agent.runtime to one of "
            f"{', '.join(sorted(RUNTIME_BACKENDS))}",
            field="agent.runtime",
        )
    module_name, _, class_name = target.partition(":")
    runtime: Runtime = getattr(importlib.import_module(module_name), class_name)(settings)
    return runtime
