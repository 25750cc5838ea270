"""``SqlStore``: the store over SQLAlchemy. SQLite (WAL) is the embedded default; PostgreSQL for several
control-plane replicas. Both are real backends and the store tests run against each.

There is no separate fake store: SQLite in a temporary directory is fast enough for unit tests and is the very
backend a single-machine install uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from dockyard._util.clock import Clock, SystemClock
from dockyard.errors import ConflictError, NotFoundError, UnavailableError
from dockyard.store import records as r
from dockyard.store import rows
from dockyard.store.models import (
    AccountRow,
    ApiKeyRow,
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
    SourceRow,
    SshKeyRow,
)
from dockyard.types import (
    AccountId,
    AppId,
    BuildStatus,
    DomainKind,
    ReleaseStatus,
    ReleaseVersion,
)

_RELEASE_VERSION_ATTEMPTS = 20


def _new_id() -> str:
    return str(uuid.uuid4())


def _looks_like_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def create_store_engine(url: str) -> Engine:
    """An engine with the settings Dockyard relies on: WAL, foreign keys and write locks taken at BEGIN on
    SQLite, so that two writers never interleave a read-then-write (release versions depend on it)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


class SqlStore:
    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self.clock = clock or SystemClock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Tx]:
        try:
            with self.engine.connect() as conn:
                conn.info["write"] = write
                try:
                    with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                        yield Tx(session, self.clock)
                finally:
                    conn.info.pop("write", None)
        except OperationalError as exc:
            raise UnavailableError(f"the database is not available: {exc.orig}") from exc

    def transaction(self) -> AbstractContextManager[Tx]:
        """A read-write unit of work, committed when the block ends without an exception."""
        return self._session(write=True)

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only unit of work (it must not write)."""
        return self._session(write=False)

    def dispose(self) -> None:
        self.engine.dispose()


class Tx:
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

    # -- accounts and API keys ------------------------------------------------------------------------

    def create_account(self, email: str, name: str = "") -> r.Account:
        now = self._now()
        row = AccountRow(
            id=_new_id(), email=email.lower(), name=name, created_at=now, updated_at=now
        )
        self.session.add(row)
        self._flush_unique(f"An account with email {email} already exists")
        return rows.account_record(row)

    def get_account(self, account_id: str) -> r.Account:
        row = self.session.get(AccountRow, account_id)
        if row is None:
            raise NotFoundError(f"Account {account_id} not found")
        return rows.account_record(row)

    def find_account(self, id_or_email: str) -> r.Account:
        column = AccountRow.id if _looks_like_uuid(id_or_email) else AccountRow.email
        row = self.session.scalars(select(AccountRow).where(column == id_or_email.lower())).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that user: {id_or_email}")
        return rows.account_record(row)

    def list_accounts(self) -> list[r.Account]:
        return [
            rows.account_record(x)
            for x in self.session.scalars(select(AccountRow).order_by(AccountRow.email))
        ]

    def add_api_key(self, account_id: str, token_hash: str, description: str = "") -> r.ApiKey:
        row = ApiKeyRow(
            id=_new_id(),
            account_id=account_id,
            token_hash=token_hash,
            description=description,
            created_at=self._now(),
            last_used_at=None,
        )
        self.session.add(row)
        self._flush_unique("That API key already exists")
        return r.ApiKey(
            id=row.id,
            account_id=AccountId(row.account_id),
            description=row.description,
            created_at=row.created_at,
            last_used_at=None,
        )

    def account_for_token(self, token_hash: str) -> r.Account | None:
        row = self.session.execute(
            select(AccountRow, ApiKeyRow)
            .join(ApiKeyRow, ApiKeyRow.account_id == AccountRow.id)
            .where(ApiKeyRow.token_hash == token_hash)
        ).first()
        return None if row is None else rows.account_record(row[0])

    def touch_api_key(self, token_hash: str) -> None:
        self.session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.token_hash == token_hash)
            .values(last_used_at=self._now())
        )

    # -- apps -----------------------------------------------------------------------------------------

    def _app_row(self, id_or_name: str) -> AppRow:
        column = AppRow.id if _looks_like_uuid(id_or_name) else AppRow.name
        row = self.session.scalars(select(AppRow).where(column == id_or_name)).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that app: {id_or_name}")
        return row

    def _app(self, row: AppRow) -> r.App:
        return rows.app_record(row, self._email(row.owner_id) or "")

    def create_app(self, name: str, owner_id: str, stack: str) -> r.App:
        now = self._now()
        row = AppRow(
            id=_new_id(),
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

    # -- slugs and builds -----------------------------------------------------------------------------

    def create_slug(
        self,
        app_id: str,
        *,
        digest: str,
        size: int,
        process_types: Mapping[str, str],
        commit: str | None,
        stack: str,
    ) -> r.Slug:
        row = SlugRow(
            id=_new_id(),
            app_id=app_id,
            digest=digest,
            size=size,
            process_types=dict(process_types),
            commit=commit,
            stack=stack,
            created_at=self._now(),
        )
        self.session.add(row)
        self.session.flush()
        return rows.slug_record(row)

    def get_slug(self, slug_id: str) -> r.Slug:
        row = self.session.get(SlugRow, slug_id)
        if row is None:
            raise NotFoundError(f"Slug {slug_id} not found")
        return rows.slug_record(row)

    def slug_digests_in_use(self) -> set[str]:
        return set(self.session.scalars(select(SlugRow.digest).distinct()))

    def create_build(
        self,
        app_id: str,
        *,
        user_id: str | None,
        source_version: str | None,
        buildpacks: Sequence[str] | None = None,
    ) -> r.Build:
        now = self._now()
        row = BuildRow(
            id=_new_id(),
            buildpacks=None if buildpacks is None else list(buildpacks),
            app_id=app_id,
            status="pending",
            source_version=source_version,
            user_id=user_id,
            slug_id=None,
            release_id=None,
            output="",
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return self._build(row)

    def finish_build(
        self,
        build_id: str,
        *,
        status: BuildStatus,
        output: str,
        slug_id: str | None = None,
        release_id: str | None = None,
    ) -> r.Build:
        row = self.session.get(BuildRow, build_id)
        if row is None:
            raise NotFoundError(f"Build {build_id} not found")
        row.status = status
        row.output = output
        row.slug_id = slug_id
        row.release_id = release_id
        row.updated_at = self._now()
        return self._build(row)

    def get_build(self, app_id: str, build_id: str) -> r.Build:
        row = self.session.get(BuildRow, build_id) if _looks_like_uuid(build_id) else None
        if row is None or row.app_id != app_id:
            raise NotFoundError(f"Couldn't find that build: {build_id}")
        return self._build(row)

    def list_builds(self, app_id: str) -> list[r.Build]:
        found = self.session.scalars(
            select(BuildRow)
            .where(BuildRow.app_id == app_id)
            .order_by(BuildRow.created_at, BuildRow.id)
        )
        return [self._build(row) for row in found]

    def _email(self, account_id: str | None) -> str | None:
        if account_id is None:
            return None
        account = self.session.get(AccountRow, account_id)
        return None if account is None else account.email

    def _build(self, row: BuildRow) -> r.Build:
        return r.Build(
            id=row.id,
            app_id=AppId(row.app_id),
            status=rows.build_status(row.status),
            source_version=row.source_version,
            user_id=None if row.user_id is None else AccountId(row.user_id),
            user_email=self._email(row.user_id),
            slug_id=row.slug_id,
            release_id=row.release_id,
            output=row.output,
            created_at=row.created_at,
            updated_at=row.updated_at,
            buildpacks=None if row.buildpacks is None else tuple(row.buildpacks),
        )

    # -- buildpack installations and uploaded sources ------------------------------------------------

    def list_buildpacks(self, app_id: str) -> list[r.BuildpackInstallation]:
        found = self.session.scalars(
            select(BuildpackInstallationRow)
            .where(BuildpackInstallationRow.app_id == app_id)
            .order_by(BuildpackInstallationRow.ordinal)
        )
        return [
            r.BuildpackInstallation(AppId(row.app_id), row.ordinal, row.url, row.name)
            for row in found
        ]

    def replace_buildpacks(self, app_id: str, buildpacks: Sequence[tuple[str, str]]) -> None:
        """Make ``buildpacks`` (url, name), in order, the app's whole list (Heroku's PUT semantics)."""
        self.session.execute(
            delete(BuildpackInstallationRow).where(BuildpackInstallationRow.app_id == app_id)
        )
        self.session.add_all(
            BuildpackInstallationRow(app_id=app_id, ordinal=i, url=url, name=name)
            for i, (url, name) in enumerate(buildpacks, start=1)
        )

    def create_source(self, account_id: str, *, expires_at: datetime) -> r.Source:
        row = SourceRow(
            id=_new_id(),
            account_id=account_id,
            size=None,
            checksum=None,
            created_at=self._now(),
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return rows.source_record(row)

    def update_source(self, source_id: str, *, size: int, checksum: str) -> r.Source:
        row = self.session.get(SourceRow, source_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that source: {source_id}")
        row.size = size
        row.checksum = checksum
        return rows.source_record(row)

    def get_source(self, source_id: str) -> r.Source:
        row = self.session.get(SourceRow, source_id) if _looks_like_uuid(source_id) else None
        if row is None:
            raise NotFoundError(f"Couldn't find that source: {source_id}")
        return rows.source_record(row)

    def delete_sources_expired_before(self, moment: datetime) -> list[str]:
        expired = list(
            self.session.scalars(select(SourceRow.id).where(SourceRow.expires_at < moment))
        )
        self.session.execute(delete(SourceRow).where(SourceRow.id.in_(expired)))
        return expired

    # -- releases -------------------------------------------------------------------------------------

    def create_release(
        self,
        app_id: str,
        *,
        slug_id: str | None,
        config: Mapping[str, str],
        description: str,
        user_id: str | None,
        status: ReleaseStatus = "succeeded",
    ) -> r.Release:
        """Append the next version. The (app, version) unique constraint decides between concurrent
        writers; the loser retries with the next number."""
        for _ in range(_RELEASE_VERSION_ATTEMPTS):
            latest = self.session.scalar(
                select(func.max(ReleaseRow.version)).where(ReleaseRow.app_id == app_id)
            )
            now = self._now()
            row = ReleaseRow(
                id=_new_id(),
                app_id=app_id,
                version=(latest or 0) + 1,
                slug_id=slug_id,
                config=dict(config),
                description=description,
                status=status,
                user_id=user_id,
                created_at=now,
                updated_at=now,
            )
            try:
                with self.session.begin_nested():
                    self.session.add(row)
                    self.session.flush()
            except IntegrityError:
                continue
            return self._release(row)
        raise ConflictError("Another release is being created for this app right now; try again")

    def list_releases(self, app_id: str) -> list[r.Release]:
        found = self.session.scalars(
            select(ReleaseRow).where(ReleaseRow.app_id == app_id).order_by(ReleaseRow.version)
        )
        return [self._release(row) for row in found]

    def get_release(self, app_id: str, id_or_version: str | int) -> r.Release:
        query = select(ReleaseRow).where(ReleaseRow.app_id == app_id)
        text = str(id_or_version)
        if text.isdigit():
            query = query.where(ReleaseRow.version == int(text))
        elif _looks_like_uuid(text):
            query = query.where(ReleaseRow.id == text)
        else:
            raise NotFoundError(f"Couldn't find that release: {id_or_version}")
        row = self.session.scalars(query).first()
        if row is None:
            raise NotFoundError(f"Couldn't find that release: {id_or_version}")
        return self._release(row)

    def current_release(self, app_id: str) -> r.Release | None:
        row = self.session.scalars(
            select(ReleaseRow)
            .where(ReleaseRow.app_id == app_id, ReleaseRow.status == "succeeded")
            .order_by(ReleaseRow.version.desc())
            .limit(1)
        ).first()
        return None if row is None else self._release(row)

    def _release(self, row: ReleaseRow) -> r.Release:
        return r.Release(
            id=row.id,
            app_id=AppId(row.app_id),
            version=ReleaseVersion(row.version),
            slug_id=row.slug_id,
            config=dict(row.config),
            description=row.description,
            status=rows.release_status(row.status),
            user_id=None if row.user_id is None else AccountId(row.user_id),
            user_email=self._email(row.user_id),
            created_at=row.created_at,
            updated_at=row.updated_at,
            output=row.output,
        )

    def finish_release(self, release_id: str, *, status: ReleaseStatus, output: str) -> r.Release:
        """Record the outcome of a pending release (its release phase); only pending releases change."""
        row = self.session.get(ReleaseRow, release_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that release: {release_id}")
        if row.status != "pending":
            raise ConflictError(f"Release v{row.version} is already {row.status}")
        row.status = status
        row.output = output
        row.updated_at = self._now()
        return self._release(row)

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
                id=_new_id(),
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
            id=_new_id(),
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
        column = OneOffDynoRow.id if _looks_like_uuid(id_or_name) else OneOffDynoRow.name
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

    # -- domains --------------------------------------------------------------------------------------

    def add_domain(self, app_id: str, hostname: str, kind: DomainKind) -> r.Domain:
        now = self._now()
        row = DomainRow(
            id=_new_id(),
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
        column = DomainRow.id if _looks_like_uuid(id_or_hostname) else DomainRow.hostname
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

    # -- collaborators --------------------------------------------------------------------------------

    def add_collaborator(self, app_id: str, account_id: str) -> r.Collaborator:
        now = self._now()
        row = CollaboratorRow(
            id=_new_id(), app_id=app_id, account_id=account_id, created_at=now, updated_at=now
        )
        self.session.add(row)
        self._flush_unique("That user is already a collaborator on this app")
        return self._collaborator(row)

    def list_collaborators(self, app_id: str) -> list[r.Collaborator]:
        found = self.session.scalars(
            select(CollaboratorRow)
            .where(CollaboratorRow.app_id == app_id)
            .order_by(CollaboratorRow.created_at)
        )
        return [self._collaborator(row) for row in found]

    def is_collaborator(self, app_id: str, account_id: str) -> bool:
        query = select(func.count()).where(
            CollaboratorRow.app_id == app_id, CollaboratorRow.account_id == account_id
        )
        return self.session.scalar(query) != 0

    def remove_collaborator(self, collaborator_id: str) -> None:
        self.session.execute(delete(CollaboratorRow).where(CollaboratorRow.id == collaborator_id))

    def _collaborator(self, row: CollaboratorRow) -> r.Collaborator:
        return r.Collaborator(
            id=row.id,
            app_id=AppId(row.app_id),
            account_id=AccountId(row.account_id),
            email=self._email(row.account_id) or "",
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    # -- SSH keys -------------------------------------------------------------------------------------

    def add_ssh_key(
        self, account_id: str, public_key: str, fingerprint: str, comment: str
    ) -> r.SshKey:
        now = self._now()
        row = SshKeyRow(
            id=_new_id(),
            account_id=account_id,
            public_key=public_key,
            fingerprint=fingerprint,
            comment=comment,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self._flush_unique("That key is already registered (keys can belong to one account only)")
        return rows.ssh_key_record(row)

    def list_ssh_keys(self, account_id: str) -> list[r.SshKey]:
        found = self.session.scalars(
            select(SshKeyRow)
            .where(SshKeyRow.account_id == account_id)
            .order_by(SshKeyRow.created_at)
        )
        return [rows.ssh_key_record(row) for row in found]

    def account_for_ssh_key(self, fingerprint: str) -> r.Account | None:
        """The account a registered public key (by its ``SHA256:`` fingerprint) belongs to."""
        row = self.session.execute(
            select(AccountRow)
            .join(SshKeyRow, SshKeyRow.account_id == AccountRow.id)
            .where(SshKeyRow.fingerprint == fingerprint)
        ).first()
        return None if row is None else rows.account_record(row[0])

    def delete_ssh_key(self, key_id: str) -> None:
        self.session.execute(delete(SshKeyRow).where(SshKeyRow.id == key_id))
