"""Frozen records returned by the store; plain data, no database session attached."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from dockyard.types import (
    AccountId,
    AppId,
    AppName,
    BuildStatus,
    DomainKind,
    DynoName,
    DynoState,
    ProcessType,
    ReleaseStatus,
    ReleaseVersion,
    SlugDigest,
)


@dataclass(frozen=True)
class Account:
    id: AccountId
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: str
    account_id: AccountId
    description: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class App:
    id: AppId
    name: AppName
    owner_id: AccountId
    owner_email: str
    maintenance: bool
    stack: str
    created_at: datetime
    updated_at: datetime
    released_at: datetime | None
    restart_generation: int


@dataclass(frozen=True)
class Slug:
    id: str
    app_id: AppId
    digest: SlugDigest
    size: int
    process_types: Mapping[str, str]
    commit: str | None
    stack: str
    created_at: datetime


@dataclass(frozen=True)
class Build:
    id: str
    app_id: AppId
    status: BuildStatus
    source_version: str | None
    user_id: AccountId | None
    user_email: str | None
    slug_id: str | None
    release_id: str | None
    output: str
    created_at: datetime
    updated_at: datetime
    buildpacks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BuildpackInstallation:
    app_id: AppId
    ordinal: int
    url: str
    name: str


@dataclass(frozen=True)
class Source:
    id: str
    account_id: AccountId
    size: int | None
    checksum: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Release:
    id: str
    app_id: AppId
    version: ReleaseVersion
    slug_id: str | None
    config: Mapping[str, str]
    description: str
    status: ReleaseStatus
    user_id: AccountId | None
    user_email: str | None
    created_at: datetime
    updated_at: datetime
    output: str = ""


@dataclass(frozen=True)
class FormationEntry:
    id: str
    app_id: AppId
    type: ProcessType
    quantity: int
    size: str
    restart_generation: int
    dyno_generations: Mapping[str, int]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Dyno:
    id: str
    app_id: AppId
    name: DynoName
    type: ProcessType
    release_version: ReleaseVersion
    state: DynoState
    command: str
    size: str
    address: str | None
    host: str
    started_at: datetime
    updated_at: datetime
    next_retry_at: datetime | None = None
    """For a crashed dyno waiting out its back-off: when the agent restarts it."""


OneOffState = Literal["pending", "stopped", "exited"]
"""``pending``: wanted (starting or running); ``stopped``: a stop was asked for; ``exited``: it ran."""


@dataclass(frozen=True)
class OneOffDyno:
    """A one-off dyno as asked for (``POST /apps/{app}/dynos``); the agent reports it like any dyno."""

    id: str
    app_id: AppId
    name: DynoName
    """``run.1234``."""
    command: str
    env: Mapping[str, str]
    """Set for this run only, on top of the release's config vars."""
    size: str
    attach: bool
    tty: bool
    """Attached runs: the client asked for a terminal."""
    time_to_live: int
    release_version: ReleaseVersion
    created_at: datetime
    state: OneOffState

    @property
    def type(self) -> ProcessType:
        return ProcessType(self.name.partition(".")[0])


@dataclass(frozen=True)
class Domain:
    id: str
    app_id: AppId
    hostname: str
    kind: DomainKind
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Collaborator:
    id: str
    app_id: AppId
    account_id: AccountId
    email: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SshKey:
    id: str
    account_id: AccountId
    public_key: str
    fingerprint: str
    comment: str
    created_at: datetime
    updated_at: datetime
