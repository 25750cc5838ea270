"""Store methods: log drains (``/apps/{app}/log-drains``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select

from dockyard.errors import NotFoundError
from dockyard.store.models import AppDeletionRow, AppRow, LogDrainRow
from dockyard.store.unit import TxBase, looks_like_uuid, new_id
from dockyard.types import AppId, AppName


@dataclass(frozen=True)
class LogDrain:
    id: str
    app_id: AppId
    app_name: AppName
    url: str
    token: str
    created_at: datetime
    updated_at: datetime


class DrainsTx(TxBase):
    def _drain(self, row: LogDrainRow, app_name: str | None = None) -> LogDrain:
        if app_name is None:
            app = self.session.get(AppRow, row.app_id)
            app_name = app.name if app is not None else ""
        return LogDrain(
            id=row.id,
            app_id=AppId(row.app_id),
            app_name=AppName(app_name),
            url=row.url,
            token=row.token,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def add_log_drain(self, app_id: str, url: str) -> LogDrain:
        """A new drain with a fresh ``d.<uuid>`` token; ``ConflictError`` when the app has one to
        this URL already."""
        now = self._now()
        drain_id = new_id()
        row = LogDrainRow(
            id=drain_id,
            app_id=app_id,
            url=url,
            token=f"d.{drain_id}",
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self._flush_unique("Url has already been taken")
        return self._drain(row)

    def list_log_drains(self, app_id: str) -> list[LogDrain]:
        found = self.session.scalars(
            select(LogDrainRow)
            .where(LogDrainRow.app_id == app_id)
            .order_by(LogDrainRow.created_at, LogDrainRow.id)
        )
        return [self._drain(row) for row in found]

    def count_log_drains(self, app_id: str) -> int:
        count = self.session.scalar(
            select(func.count()).select_from(LogDrainRow).where(LogDrainRow.app_id == app_id)
        )
        return int(count or 0)

    def get_log_drain(self, app_id: str, id_url_or_token: str) -> LogDrain:
        """A drain of the app by its id, its token or its URL."""
        query = select(LogDrainRow).where(LogDrainRow.app_id == app_id)
        if looks_like_uuid(id_url_or_token):
            query = query.where(LogDrainRow.id == id_url_or_token)
        elif id_url_or_token.startswith("d."):
            query = query.where(LogDrainRow.token == id_url_or_token)
        else:
            query = query.where(LogDrainRow.url == id_url_or_token)
        row = self.session.scalars(query).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that log drain: {id_url_or_token}")
        return self._drain(row)

    def delete_log_drain(self, app_id: str, drain_id: str) -> None:
        row = self.session.get(LogDrainRow, drain_id)
        if row is None or row.app_id != app_id:
            raise NotFoundError(f"Couldn't find that log drain: {drain_id}")
        self.session.delete(row)
        self.session.flush()

    def all_log_drains(self) -> list[LogDrain]:
        """Every drain of every app that is not soft-deleted (the logs process ships them: a
        deleted app's drains stop at its deletion and come back with a restore)."""
        found = self.session.execute(
            select(LogDrainRow, AppRow.name)
            .join(AppRow, AppRow.id == LogDrainRow.app_id)
            .where(~exists().where(AppDeletionRow.app_id == LogDrainRow.app_id))
            .order_by(LogDrainRow.app_id, LogDrainRow.created_at)
        )
        return [self._drain(row, name) for row, name in found]
