"""Turning ORM rows into the frozen records the rest of Dockyard sees."""

from __future__ import annotations

from dockyard.store import records as r
from dockyard.store.models import (
    AccountRow,
    AppRow,
    DomainRow,
    DynoRow,
    FormationRow,
    OneOffDynoRow,
    SlugRow,
    SourceRow,
    SshKeyRow,
)
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

_BUILD_STATUSES: dict[str, BuildStatus] = {
    "pending": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
}
_RELEASE_STATUSES: dict[str, ReleaseStatus] = {
    "pending": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
}
_DYNO_STATES: dict[str, DynoState] = {
    "starting": "starting",
    "up": "up",
    "crashed": "crashed",
    "down": "down",
    "idle": "idle",
}


def build_status(value: str) -> BuildStatus:
    return _BUILD_STATUSES[value]


def release_status(value: str) -> ReleaseStatus:
    return _RELEASE_STATUSES[value]


def dyno_state(value: str) -> DynoState:
    return _DYNO_STATES[value]


def account_record(row: AccountRow) -> r.Account:
    return r.Account(
        id=AccountId(row.id),
        email=row.email,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def app_record(row: AppRow, owner_email: str) -> r.App:
    return r.App(
        id=AppId(row.id),
        name=AppName(row.name),
        owner_id=AccountId(row.owner_id),
        owner_email=owner_email,
        maintenance=row.maintenance,
        stack=row.stack,
        created_at=row.created_at,
        updated_at=row.updated_at,
        released_at=row.released_at,
        restart_generation=row.restart_generation,
    )


def slug_record(row: SlugRow) -> r.Slug:
    return r.Slug(
        id=row.id,
        app_id=AppId(row.app_id),
        digest=SlugDigest(row.digest),
        size=row.size,
        process_types=dict(row.process_types),
        commit=row.commit,
        stack=row.stack,
        created_at=row.created_at,
    )


def formation_record(row: FormationRow) -> r.FormationEntry:
    return r.FormationEntry(
        id=row.id,
        app_id=AppId(row.app_id),
        type=ProcessType(row.type),
        quantity=row.quantity,
        size=row.size,
        restart_generation=row.restart_generation,
        dyno_generations=dict(row.dyno_generations or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def dyno_record(row: DynoRow) -> r.Dyno:
    return r.Dyno(
        id=row.id,
        app_id=AppId(row.app_id),
        name=DynoName(row.name),
        type=ProcessType(row.type),
        release_version=ReleaseVersion(row.release_version),
        state=dyno_state(row.state),
        command=row.command,
        size=row.size,
        address=row.address,
        host=row.host,
        started_at=row.started_at,
        updated_at=row.updated_at,
        next_retry_at=row.next_retry_at,
    )


_ONE_OFF_STATES: dict[str, r.OneOffState] = {
    "pending": "pending",
    "stopped": "stopped",
    "exited": "exited",
}


def one_off_state(value: str) -> r.OneOffState:
    return _ONE_OFF_STATES[value]


def one_off_dyno_record(row: OneOffDynoRow) -> r.OneOffDyno:
    return r.OneOffDyno(
        id=row.id,
        app_id=AppId(row.app_id),
        name=DynoName(row.name),
        command=row.command,
        env={str(k): str(v) for k, v in (row.env or {}).items()},
        size=row.size,
        attach=row.attach,
        tty=row.tty,
        time_to_live=row.time_to_live,
        release_version=ReleaseVersion(row.release_version),
        created_at=row.created_at,
        state=one_off_state(row.state),
    )


def domain_record(row: DomainRow) -> r.Domain:
    kind: DomainKind = "heroku" if row.kind == "heroku" else "custom"
    return r.Domain(
        id=row.id,
        app_id=AppId(row.app_id),
        hostname=row.hostname,
        kind=kind,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def ssh_key_record(row: SshKeyRow) -> r.SshKey:
    return r.SshKey(
        id=row.id,
        account_id=AccountId(row.account_id),
        public_key=row.public_key,
        fingerprint=row.fingerprint,
        comment=row.comment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def source_record(row: SourceRow) -> r.Source:
    return r.Source(
        id=row.id,
        account_id=AccountId(row.account_id),
        size=row.size,
        checksum=row.checksum,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
