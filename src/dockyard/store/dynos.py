"""Store methods: formation, the dynos agents report, and the desired state of one-off dynos."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import delete, select

from dockyard.errors import NotFoundError
from dockyard.store import records as r
from dockyard.store import rows
from dockyard.store.models import (
    AppRow,
    DynoRow,
    FormationRow,
    OneOffDynoRow,
)
from dockyard.store.unit import TxBase, looks_like_uuid, new_id


class DynosTx(TxBase):
    # -- formation ------------------------------------------------------------------------------------

    def list_formation(self, app_id: str) -> list[r.FormationEntry]:
        found = self.session.scalars(
            select(FormationRow).where(FormationRow.app_id == app_id).order_by(FormationRow.type)
        )
        return [rows.formation_record(row) for row in found]

    def get_formation(self, app_id: str, ptype: str) -> r.FormationEntry:
        row = self._formation_row(app_id, ptype)
        if row is None:
            raise NotFoundError(f"Couldn't find that formation: {ptype}")
        return rows.formation_record(row)

    def _formation_row(self, app_id: str, ptype: str) -> FormationRow | None:
        return self.session.scalars(
            select(FormationRow).where(FormationRow.app_id == app_id, FormationRow.type == ptype)
        ).first()

    def ensure_formation(
        self, app_id: str, ptype: str, *, quantity: int, size: str
    ) -> r.FormationEntry:
        """Create the entry with these values if the type has none yet; leave an existing one alone."""
        row = self._formation_row(app_id, ptype)
        if row is None:
            now = self._now()
            row = FormationRow(
                id=new_id(),
                app_id=app_id,
                type=ptype,
                quantity=quantity,
                size=size,
                restart_generation=0,
                dyno_generations={},
                created_at=now,
                updated_at=now,
            )
            self.session.add(row)
            self.session.flush()
        return rows.formation_record(row)

    def update_formation(
        self,
        app_id: str,
        ptype: str,
        *,
        quantity: int | None = None,
        size: str | None = None,
        restart_dyno: int | None = None,
        restart_all: bool = False,
    ) -> r.FormationEntry:
        row = self._formation_row(app_id, ptype)
        if row is None:
            raise NotFoundError(f"Couldn't find that formation: {ptype}")
        if quantity is not None:
            row.quantity = quantity
        if size is not None:
            row.size = size
        if restart_all:
            row.restart_generation += 1
        if restart_dyno is not None:
            generations = dict(row.dyno_generations)
            generations[str(restart_dyno)] = generations.get(str(restart_dyno), 0) + 1
            row.dyno_generations = generations
        row.updated_at = self._now()
        return rows.formation_record(row)

    # -- dynos (as reported by agents) ----------------------------------------------------------------

    def replace_dynos(self, host: str, dynos: Sequence[r.Dyno]) -> None:
        """Make ``dynos`` the complete list of what ``host`` runs."""
        self.session.execute(delete(DynoRow).where(DynoRow.host == host))
        known_apps = set(self.session.scalars(select(AppRow.id)))
        self.session.add_all(
            DynoRow(
                id=d.id,
                app_id=d.app_id,
                name=d.name,
                type=d.type,
                release_version=d.release_version,
                state=d.state,
                command=d.command,
                size=d.size,
                address=d.address,
                host=host,
                started_at=d.started_at,
                updated_at=d.updated_at,
                next_retry_at=d.next_retry_at,
            )
            for d in dynos
            if d.app_id in known_apps
        )

    def list_dynos(self, app_id: str | None = None) -> list[r.Dyno]:
        query = select(DynoRow).order_by(DynoRow.type, DynoRow.name, DynoRow.started_at)
        if app_id is not None:
            query = query.where(DynoRow.app_id == app_id)
        return [rows.dyno_record(row) for row in self.session.scalars(query)]

    # -- one-off dynos (their desired state) ----------------------------------------------------------

    def add_one_off_dyno(
        self,
        app_id: str,
        *,
        name: str,
        command: str,
        env: Mapping[str, str],
        size: str,
        attach: bool,
        time_to_live: int,
        release_version: int,
        tty: bool = True,
    ) -> r.OneOffDyno:
        row = OneOffDynoRow(
            id=new_id(),
            app_id=app_id,
            name=name,
            command=command,
            env=dict(env),
            size=size,
            attach=attach,
            tty=tty,
            time_to_live=time_to_live,
            release_version=release_version,
            created_at=self._now(),
            state="pending",
        )
        self.session.add(row)
        self.session.flush()
        return rows.one_off_dyno_record(row)

    def list_one_off_dynos(
        self, app_id: str | None = None, *, states: Collection[r.OneOffState] | None = None
    ) -> list[r.OneOffDyno]:
        """Oldest first; only those in ``states`` when given."""
        query = select(OneOffDynoRow).order_by(OneOffDynoRow.created_at, OneOffDynoRow.id)
        if app_id is not None:
            query = query.where(OneOffDynoRow.app_id == app_id)
        if states is not None:
            query = query.where(OneOffDynoRow.state.in_(list(states)))
        return [rows.one_off_dyno_record(row) for row in self.session.scalars(query)]

    def get_one_off_dyno(self, app_id: str, id_or_name: str) -> r.OneOffDyno:
        """By id, or by name (``run.1234``): the pending one of that name, else the newest."""
        column = OneOffDynoRow.id if looks_like_uuid(id_or_name) else OneOffDynoRow.name
        row = self.session.scalars(
            select(OneOffDynoRow)
            .where(OneOffDynoRow.app_id == app_id, column == id_or_name)
            .order_by((OneOffDynoRow.state == "pending").desc(), OneOffDynoRow.created_at.desc())
        ).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that dyno: {id_or_name}")
        return rows.one_off_dyno_record(row)

    def set_one_off_dyno_state(self, dyno_id: str, state: r.OneOffState) -> r.OneOffDyno:
        row = self.session.get(OneOffDynoRow, dyno_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that dyno: {dyno_id}")
        row.state = state
        return rows.one_off_dyno_record(row)
