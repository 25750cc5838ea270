"""The unit of work the store hands out: a session, a clock, and the helpers every group of methods uses."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockyard._util.clock import Clock
from dockyard.errors import ConflictError, NotFoundError
from dockyard.store import records as r
from dockyard.store import rows
from dockyard.store.models import (
    AccountRow,
    AppRow,
)


def new_id() -> str:
    return str(uuid.uuid4())


def looks_like_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class TxBase:
    """One unit of work. Methods raise ``NotFoundError`` / ``ConflictError``, never database errors."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    def _now(self) -> datetime:
        return self.clock.now()

    def _flush_unique(self, message: str) -> None:
        """Flush in a savepoint so a unique violation becomes ``ConflictError`` and the transaction lives on."""
        try:
            with self.session.begin_nested():
                self.session.flush()
        except IntegrityError as exc:
            raise ConflictError(message) from exc

    def _app_row(self, id_or_name: str) -> AppRow:
        column = AppRow.id if looks_like_uuid(id_or_name) else AppRow.name
        row = self.session.scalars(select(AppRow).where(column == id_or_name)).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that app: {id_or_name}")
        return row

    def _app(self, row: AppRow) -> r.App:
        return rows.app_record(row, self._email(row.owner_id) or "")

    def _email(self, account_id: str | None) -> str | None:
        if account_id is None:
            return None
        account = self.session.get(AccountRow, account_id)
        return None if account is None else account.email
