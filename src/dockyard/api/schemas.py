"""JSON shapes of Heroku Platform API v3 resources, built from store records, and request bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from dockyard.control.slugs import SlugUpload
from dockyard.domain.formation import DYNO_SIZES, DynoSize
from dockyard.settings import Settings
from dockyard.store.drains import LogDrain
from dockyard.store.records import (
    Account,
    App,
    Build,
    BuildpackInstallation,
    Collaborator,
    Domain,
    Dyno,
    FormationEntry,
    Release,
    Slug,
    SshKey,
)
from dockyard.store.routing import RouterConfig, SniEndpoint

JSON = dict[str, Any]
_STACK_NAMESPACE = uuid.UUID("5b0c8b76-5d3c-4a5e-9a4b-6a54b0c1d2e3")


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as Heroku writes them."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_id(name: str) -> str:
    return str(uuid.uuid5(_STACK_NAMESPACE, name))


def display_size(size: str) -> str:
    """``standard-2x`` → ``Standard-2X``, as Heroku shows sizes."""
    return "-".join(
        part.upper() if part[:1].isdigit() else part.capitalize() for part in size.split("-")
    )


def app_ref(app: App) -> JSON:
    return {"id": app.id, "name": app.name}


def account_json(account: Account) -> JSON:
    return {
        "allow_tracking": True,
        "beta": False,
        "created_at": timestamp(account.created_at),
        "default_organization": None,
        "default_team": None,
        "delinquent_at": None,
        "email": account.email,
        "federated": False,
        "id": account.id,
        "identity_provider": None,
        "last_login": None,
        "name": account.name or None,
        "sms_number": None,
        "suspended_at": None,
        "two_factor_authentication": False,
        "updated_at": timestamp(account.updated_at),
        "verified": False,
    }


def app_json(app: App, settings: Settings) -> JSON:
    stack = {"id": stable_id(app.stack), "name": app.stack}
    return {
        "acm": False,
        "archived_at": None,
        "build_stack": stack,
        "buildpack_provided_description": None,
        "created_at": timestamp(app.created_at),
        "generation": {"id": stable_id("cedar"), "name": "cedar"},
        "git_url": f"{settings.api_url}/{app.name}.git",
        "id": app.id,
        "internal_routing": None,
        "maintenance": app.maintenance,
        "name": app.name,
        "organization": None,
        "owner": {"email": app.owner_email, "id": app.owner_id},
        "region": {"id": stable_id("local"), "name": "local"},
        "released_at": timestamp(app.released_at),
        "repo_size": None,
        "slug_size": None,
        "space": None,
        "stack": stack,
        "team": None,
        "updated_at": timestamp(app.updated_at),
        "web_url": settings.app_url(app.name),
    }


def user_ref(user_id: str | None, email: str | None) -> JSON | None:
    if user_id is None:
        return None
    return {"email": email, "id": user_id}


def release_json(
    app: App,
    release: Release,
    *,
    current_version: int | None,
    output_stream_url: str | None = None,
) -> JSON:
    return {
        "addon_plan_names": [],
        "app": app_ref(app),
        "artifacts": [],
        "created_at": timestamp(release.created_at),
        "current": release.version == current_version,
        "description": release.description,
        "eligible_for_rollback": release.status == "succeeded",
        "id": release.id,
        "output_stream_url": output_stream_url,
        "slug": None if release.slug_id is None else {"id": release.slug_id},
        "status": release.status,
        "updated_at": timestamp(release.updated_at),
        "user": user_ref(release.user_id, release.user_email),
        "version": release.version,
    }


def formation_json(app: App, entry: FormationEntry, command: str) -> JSON:
    return {
        "app": app_ref(app),
        "command": command,
        "created_at": timestamp(entry.created_at),
        "dyno_size": {"id": stable_id(entry.size), "name": display_size(entry.size)},
        "id": entry.id,
        "quantity": entry.quantity,
        "size": display_size(entry.size),
        "type": entry.type,
        "updated_at": timestamp(entry.updated_at),
    }


def dyno_json(app: App, dyno: Dyno) -> JSON:
    return {
        "app": app_ref(app),
        "attach_url": None,
        "command": dyno.command,
        "created_at": timestamp(dyno.started_at),
        "id": dyno.id,
        "name": dyno.name,
        "next_retry_at": timestamp(dyno.next_retry_at),
        "release": {"id": None, "version": dyno.release_version},
        "size": display_size(dyno.size),
        "state": dyno.state,
        "type": dyno.type,
        "updated_at": timestamp(dyno.updated_at),
    }


def domain_json(app: App, domain: Domain, settings: Settings) -> JSON:
    return {
        "acm_status": None,
        "acm_status_reason": None,
        "app": app_ref(app),
        "cname": None if domain.kind == "heroku" else f"{app.name}.{settings.domain}",
        "created_at": timestamp(domain.created_at),
        "hostname": domain.hostname,
        "id": domain.id,
        "kind": domain.kind,
        "sni_endpoint": None,
        "status": "succeeded",
        "updated_at": timestamp(domain.updated_at),
    }


def build_json(app: App, build: Build, *, output_stream_url: str | None = None) -> JSON:
    buildpacks = (
        None
        if build.buildpacks is None
        else [{"name": url, "url": url} for url in build.buildpacks]
    )
    return {
        "app": {"id": app.id},
        "buildpacks": buildpacks,
        "created_at": timestamp(build.created_at),
        "id": build.id,
        "output_stream_url": output_stream_url,
        "release": None if build.release_id is None else {"id": build.release_id},
        "slug": None if build.slug_id is None else {"id": build.slug_id},
        "source_blob": {
            "checksum": None,
            "url": None,
            "version": build.source_version,
            "version_description": None,
        },
        "stack": app.stack,
        "status": build.status,
        "updated_at": timestamp(build.updated_at),
        "user": user_ref(build.user_id, build.user_email),
    }


def buildpack_installation_json(installation: BuildpackInstallation) -> JSON:
    """Heroku's shape; ``ordinal`` counts from 0 (the CLI shows it plus one)."""
    return {
        "buildpack": {"name": installation.name, "url": installation.url},
        "ordinal": installation.ordinal - 1,
    }


def slug_json(app: App, slug: Slug, *, blob_url: str) -> JSON:
    return {
        "blob": {"method": "get", "url": blob_url},
        "buildpack_provided_description": None,
        "checksum": f"SHA256:{slug.digest}",
        "commit": slug.commit,
        "commit_description": None,
        "created_at": timestamp(slug.created_at),
        "id": slug.id,
        "process_types": dict(slug.process_types),
        "size": slug.size,
        "stack": {"id": stable_id(slug.stack), "name": slug.stack},
        "updated_at": timestamp(slug.created_at),
    }


def slug_upload_json(app: App, upload: SlugUpload, *, put_url: str) -> JSON:
    """A slug announced by ``POST /apps/{app}/slugs`` whose tarball is still to be ``PUT``."""
    return {
        "blob": {"method": "put", "url": put_url},
        "buildpack_provided_description": None,
        "checksum": None if upload.checksum is None else f"SHA256:{upload.checksum}",
        "commit": upload.commit,
        "commit_description": None,
        "created_at": timestamp(upload.created_at),
        "id": upload.id,
        "process_types": dict(upload.process_types),
        "size": None,
        "stack": {"id": stable_id(upload.stack), "name": upload.stack},
        "updated_at": timestamp(upload.created_at),
    }


def collaborator_json(app: App, collaborator: Collaborator) -> JSON:
    return {
        "app": app_ref(app),
        "created_at": timestamp(collaborator.created_at),
        "id": collaborator.id,
        "permissions": [],
        "role": "collaborator",
        "updated_at": timestamp(collaborator.updated_at),
        "user": {"email": collaborator.email, "federated": False, "id": collaborator.account_id},
    }


def key_json(account: Account, key: SshKey) -> JSON:
    return {
        "comment": key.comment,
        "created_at": timestamp(key.created_at),
        "email": account.email,
        "fingerprint": key.fingerprint,
        "id": key.id,
        "public_key": key.public_key,
        "updated_at": timestamp(key.updated_at),
    }


def dyno_size_json(size: DynoSize) -> JSON:
    return {
        "architecture": "amd64",
        "compute": size.compute,
        "cost": None,
        "dedicated": size.dedicated,
        "dyno_units": size.compute,
        "id": stable_id(size.name),
        "memory": round(size.memory_mb / 1024, 2),
        "name": display_size(size.name),
        "pids": size.pids,
        "private_space_only": False,
    }


def all_dyno_sizes() -> list[JSON]:
    return [dyno_size_json(size) for size in DYNO_SIZES.values()]


def log_drain_json(drain: LogDrain) -> JSON:
    return {
        "addon": None,
        "app": {"id": drain.app_id, "name": drain.app_name},
        "created_at": timestamp(drain.created_at),
        "id": drain.id,
        "token": drain.token,
        "updated_at": timestamp(drain.updated_at),
        "url": drain.url,
    }


def sni_endpoint_json(app: App, endpoint: SniEndpoint, domain_ids: tuple[str, ...]) -> JSON:
    """Heroku's SNI endpoint: ``domains`` are the ids of the app's domains it serves."""
    cert = endpoint.certificate
    return {
        "app": app_ref(app),
        "certificate_chain": cert.certificate_chain,
        "created_at": timestamp(endpoint.created_at),
        "display_name": None,
        "domains": list(domain_ids),
        "id": endpoint.id,
        "name": endpoint.name,
        "ssl_cert": {
            "acm": False,
            "ca_signed?": cert.ca_signed,
            "cert_domains": list(cert.cert_domains),
            "expires_at": timestamp(cert.expires_at),
            "id": endpoint.id,
            "issuer": cert.issuer,
            "self_signed?": cert.self_signed,
            "starts_at": timestamp(cert.starts_at),
            "subject": cert.subject,
        },
        "updated_at": timestamp(endpoint.updated_at),
    }


def router_settings_json(app: App, config: RouterConfig) -> JSON:
    """``/apps/{app}/router-settings`` (Dockyard's own resource)."""
    return {
        "app": app_ref(app),
        "cache": config.cache,
        "connection_limit": config.connection_limit or None,
        "hsts_include_subdomains": config.hsts_include_subdomains,
        "hsts_max_age": config.hsts_max_age,
        "hsts_preload": config.hsts_preload,
        "https_redirect": config.https_redirect or None,
        "updated_at": timestamp(config.updated_at),
    }


# -- request bodies ---------------------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AppCreate(Body):
    name: str | None = None
    region: str | None = None
    stack: str | None = None


class AppUpdate(Body):
    name: str | None = None
    maintenance: bool | None = None
    build_stack: str | None = None


class ReleaseCreate(Body):
    slug: str | None = None
    release: str | int | None = None
    description: str | None = None


class FormationUpdateBody(Body):
    type: str
    quantity: int | None = None
    size: str | None = None


class FormationBatch(Body):
    updates: list[FormationUpdateBody]


class FormationTypeUpdate(Body):
    quantity: int | None = None
    size: str | None = None


class DomainCreate(Body):
    hostname: str
    sni_endpoint: str | None = None


class CollaboratorCreate(Body):
    user: str
    silent: bool = False


class KeyCreate(Body):
    public_key: str


class LogSessionCreate(Body):
    dyno: str | None = None
    dyno_name: str | None = None
    lines: int | None = None
    source: str | None = None
    tail: bool = False
    type: str | None = None


class SourceBlob(Body):
    url: str
    checksum: str | None = None
    version: str | None = None


class BuildUrl(Body):
    url: str


class BuildCreate(Body):
    source_blob: SourceBlob
    buildpacks: list[BuildUrl] | None = None


class SlugCreate(Body):
    process_types: dict[str, str]
    commit: str | None = None
    checksum: str | None = None
    stack: str | None = None
    buildpack_provided_description: str | None = None


class BuildpackUpdate(Body):
    buildpack: str


class BuildpackInstallationsUpdate(Body):
    updates: list[BuildpackUpdate]


class LogDrainCreate(Body):
    url: str


class SniEndpointCreate(Body):
    certificate_chain: str
    private_key: str


class RouterSettingsUpdate(Body):
    model_config = ConfigDict(extra="forbid")
    cache: bool | None = None
    https_redirect: int | None = None
    hsts_max_age: int | None = None
    hsts_include_subdomains: bool | None = None
    hsts_preload: bool | None = None
    connection_limit: int | None = None
