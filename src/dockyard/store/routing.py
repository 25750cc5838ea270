"""Store methods: what the router needs per app — SNI endpoints and router settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from dockyard.errors import NotFoundError
from dockyard.store.models import RouterSettingsRow, SniEndpointRow
from dockyard.store.unit import TxBase, looks_like_uuid
from dockyard.types import AppId


@dataclass(frozen=True)
class CertificateInfo:
    """What is read from a certificate chain (its leaf)."""

    certificate_chain: str
    fingerprint: str
    cert_domains: tuple[str, ...]
    subject: str
    issuer: str
    starts_at: datetime
    expires_at: datetime
    self_signed: bool
    ca_signed: bool


@dataclass(frozen=True)
class SniEndpoint:
    id: str
    app_id: AppId
    name: str
    certificate: CertificateInfo
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RouterConfig:
    """An app's router settings; the defaults are those of an app that never set any."""

    app_id: AppId
    cache: bool = False
    https_redirect: int = 0
    """0, 301 or 308."""
    hsts_max_age: int | None = None
    """None: no ``Strict-Transport-Security``."""
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    connection_limit: int = 0
    """0: the router's default."""
    updated_at: datetime | None = None


def _endpoint(row: SniEndpointRow) -> SniEndpoint:
    return SniEndpoint(
        id=row.id,
        app_id=AppId(row.app_id),
        name=row.name,
        certificate=CertificateInfo(
            certificate_chain=row.certificate_chain,
            fingerprint=row.fingerprint,
            cert_domains=tuple(row.cert_domains),
            subject=row.subject,
            issuer=row.issuer,
            starts_at=row.starts_at,
            expires_at=row.expires_at,
            self_signed=row.self_signed,
            ca_signed=row.ca_signed,
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _config(row: RouterSettingsRow) -> RouterConfig:
    return RouterConfig(
        app_id=AppId(row.app_id),
        cache=row.cache,
        https_redirect=row.https_redirect,
        hsts_max_age=row.hsts_max_age,
        hsts_include_subdomains=row.hsts_include_subdomains,
        hsts_preload=row.hsts_preload,
        connection_limit=row.connection_limit,
        updated_at=row.updated_at,
    )


class RoutingTx(TxBase):
    # -- SNI endpoints --------------------------------------------------------------------------

    def add_sni_endpoint(
        self, endpoint_id: str, app_id: str, name: str, cert: CertificateInfo
    ) -> SniEndpoint:
        """A new endpoint (its id is chosen by the caller, who wrote its key file under it);
        ``ConflictError`` when the name is taken."""
        now = self._now()
        row = SniEndpointRow(id=endpoint_id, app_id=app_id, name=name, created_at=now)
        self._set_certificate(row, cert, now)
        self.session.add(row)
        self._flush_unique(f"Name {name} is already taken")
        return _endpoint(row)

    def update_sni_endpoint(self, endpoint_id: str, cert: CertificateInfo) -> SniEndpoint:
        row = self.session.get(SniEndpointRow, endpoint_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that SNI endpoint: {endpoint_id}")
        self._set_certificate(row, cert, self._now())
        self.session.flush()
        return _endpoint(row)

    @staticmethod
    def _set_certificate(row: SniEndpointRow, cert: CertificateInfo, now: datetime) -> None:
        row.certificate_chain = cert.certificate_chain
        row.fingerprint = cert.fingerprint
        row.cert_domains = list(cert.cert_domains)
        row.subject = cert.subject
        row.issuer = cert.issuer
        row.starts_at = cert.starts_at
        row.expires_at = cert.expires_at
        row.self_signed = cert.self_signed
        row.ca_signed = cert.ca_signed
        row.updated_at = now

    def list_sni_endpoints(self, app_id: str | None = None) -> list[SniEndpoint]:
        """An app's endpoints (every app's with None), by name."""
        query = select(SniEndpointRow).order_by(SniEndpointRow.name)
        if app_id is not None:
            query = query.where(SniEndpointRow.app_id == app_id)
        return [_endpoint(row) for row in self.session.scalars(query)]

    def get_sni_endpoint(self, app_id: str, id_or_name: str) -> SniEndpoint:
        column = SniEndpointRow.id if looks_like_uuid(id_or_name) else SniEndpointRow.name
        row = self.session.scalars(
            select(SniEndpointRow).where(SniEndpointRow.app_id == app_id, column == id_or_name)
        ).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that SNI endpoint: {id_or_name}")
        return _endpoint(row)

    def sni_endpoint_name_taken(self, name: str) -> bool:
        found = self.session.scalars(
            select(SniEndpointRow.id).where(SniEndpointRow.name == name)
        ).first()
        return found is not None

    def sni_endpoint_ids(self) -> set[str]:
        """Every endpoint's id, of every app (what key files may exist)."""
        return set(self.session.scalars(select(SniEndpointRow.id)))

    def delete_sni_endpoint(self, endpoint_id: str) -> None:
        row = self.session.get(SniEndpointRow, endpoint_id)
        if row is not None:
            self.session.delete(row)
            self.session.flush()

    # -- router settings ------------------------------------------------------------------------

    def router_config(self, app_id: str) -> RouterConfig:
        row = self.session.get(RouterSettingsRow, app_id)
        return RouterConfig(AppId(app_id)) if row is None else _config(row)

    def list_router_configs(self) -> dict[str, RouterConfig]:
        """Every app that set something, by app id."""
        return {row.app_id: _config(row) for row in self.session.scalars(select(RouterSettingsRow))}

    def set_router_config(self, config: RouterConfig) -> RouterConfig:
        row = self.session.get(RouterSettingsRow, config.app_id)
        if row is None:
            row = RouterSettingsRow(app_id=config.app_id)
            self.session.add(row)
        row.cache = config.cache
        row.https_redirect = config.https_redirect
        row.hsts_max_age = config.hsts_max_age
        row.hsts_include_subdomains = config.hsts_include_subdomains
        row.hsts_preload = config.hsts_preload
        row.connection_limit = config.connection_limit
        row.updated_at = self._now()
        self.session.flush()
        return _config(row)
