"""Store methods: apps, their config vars and domains."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update

from dockyard.errors import NotFoundError
from dockyard.store import records as r
from dockyard.store import rows
from dockyard.store.models import (
    AppRow,
    BuildpackInstallationRow,
    BuildRow,
    CollaboratorRow,
    ConfigVarRow,
    DomainRow,
    DynoRow,
    FormationRow,
    OneOffDynoRow,
    ReleaseRow,
    SlugRow,
)
from dockyard.store.unit import TxBase, looks_like_uuid, new_id
from dockyard.types import (
    DomainKind,
)


class AppsTx(TxBase):
    # -- apps -----------------------------------------------------------------------------------------

    def create_app(self, name: str, owner_id: str, stack: str) -> r.App:
        now = self._now()
        row = AppRow(
            id=new_id(),
            name=name,
            owner_id=owner_id,
            maintenance=False,
            stack=stack,
            created_at=now,
            updated_at=now,
            released_at=None,
            restart_generation=0,
        )
        self.session.add(row)
        self._flush_unique(f"Name {name} is already taken")
        return self._app(row)

    def get_app(self, id_or_name: str) -> r.App:
        return self._app(self._app_row(id_or_name))

    def app_name_taken(self, name: str) -> bool:
        return self.session.scalar(select(func.count()).where(AppRow.name == name)) != 0

    def list_apps(self, account_id: str | None = None) -> list[r.App]:
        """Apps the account owns or collaborates on; every app when ``account_id`` is None."""
        query = select(AppRow).order_by(AppRow.name)
        if account_id is not None:
            shared = select(CollaboratorRow.app_id).where(CollaboratorRow.account_id == account_id)
            query = query.where(or_(AppRow.owner_id == account_id, AppRow.id.in_(shared)))
        return [self._app(row) for row in self.session.scalars(query)]

    def update_app(
        self,
        app_id: str,
        *,
        name: str | None = None,
        maintenance: bool | None = None,
        released_at: datetime | None = None,
        bump_restart: bool = False,
    ) -> r.App:
        row = self._app_row(app_id)
        if name is not None and name != row.name:
            row.name = name
            self._flush_unique(f"Name {name} is already taken")
        if maintenance is not None:
            row.maintenance = maintenance
        if released_at is not None:
            row.released_at = released_at
        if bump_restart:
            row.restart_generation += 1
        row.updated_at = self._now()
        return self._app(row)

    def delete_app(self, app_id: str) -> None:
        row = self._app_row(app_id)
        for table in (
            DynoRow,
            OneOffDynoRow,
            FormationRow,
            BuildpackInstallationRow,
            DomainRow,
            CollaboratorRow,
            ConfigVarRow,
            BuildRow,
            ReleaseRow,
            SlugRow,
        ):
            self.session.execute(delete(table).where(table.app_id == row.id))
        self.session.delete(row)

    # -- config vars ----------------------------------------------------------------------------------

    def get_config(self, app_id: str) -> dict[str, str]:
        found = self.session.scalars(
            select(ConfigVarRow).where(ConfigVarRow.app_id == app_id).order_by(ConfigVarRow.key)
        )
        return {row.key: row.value for row in found}

    def replace_config(self, app_id: str, config: Mapping[str, str]) -> None:
        self.session.execute(delete(ConfigVarRow).where(ConfigVarRow.app_id == app_id))
        self.session.add_all(ConfigVarRow(app_id=app_id, key=k, value=v) for k, v in config.items())

    # -- domains --------------------------------------------------------------------------------------

    def add_domain(self, app_id: str, hostname: str, kind: DomainKind) -> r.Domain:
        now = self._now()
        row = DomainRow(
            id=new_id(),
            app_id=app_id,
            hostname=hostname,
            kind=kind,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self._flush_unique(f"Domain {hostname} is already in use by an app")
        return rows.domain_record(row)

    def list_domains(self, app_id: str | None = None) -> list[r.Domain]:
        query = select(DomainRow).order_by(DomainRow.kind.desc(), DomainRow.hostname)
        if app_id is not None:
            query = query.where(DomainRow.app_id == app_id)
        return [rows.domain_record(row) for row in self.session.scalars(query)]

    def get_domain(self, app_id: str, id_or_hostname: str) -> r.Domain:
        column = DomainRow.id if looks_like_uuid(id_or_hostname) else DomainRow.hostname
        row = self.session.scalars(
            select(DomainRow).where(DomainRow.app_id == app_id, column == id_or_hostname.lower())
        ).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that domain: {id_or_hostname}")
        return rows.domain_record(row)

    def rename_default_domain(self, app_id: str, hostname: str) -> None:
        self.session.execute(
            update(DomainRow)
            .where(DomainRow.app_id == app_id, DomainRow.kind == "heroku")
            .values(hostname=hostname, updated_at=self._now())
        )

    def delete_domain(self, domain_id: str) -> None:
        self.session.execute(delete(DomainRow).where(DomainRow.id == domain_id))
