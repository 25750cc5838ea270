"""``SqlStore``: the store over SQLAlchemy. SQLite (WAL) is the embedded default; PostgreSQL for several
control-plane replicas. Both are real backends and the store tests run against each.

There is no separate fake store: SQLite in a temporary directory is fast enough for unit tests and is the very
backend a single-machine install uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dockyard._util.clock import Clock, SystemClock
from dockyard.errors import UnavailableError
from dockyard.store.accounts import AccountsTx
from dockyard.store.apps import AppsTx
from dockyard.store.builds import BuildsTx
from dockyard.store.credentials import CredentialsTx
from dockyard.store.drains import DrainsTx
from dockyard.store.dynos import DynosTx
from dockyard.store.routing import RoutingTx
from dockyard.store.security import SecurityTx

_RELEASE_VERSION_ATTEMPTS = 20


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
        self.commit_listeners: list[Callable[[], None]] = []
        """Called (in the committing thread) after every read-write unit of work that committed."""

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
        if write:
            for listener in list(self.commit_listeners):
                listener()

    def transaction(self) -> AbstractContextManager[Tx]:
        """A read-write unit of work, committed when the block ends without an exception."""
        return self._session(write=True)

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only unit of work (it must not write)."""
        return self._session(write=False)

    def dispose(self) -> None:
        self.engine.dispose()


class Tx(AccountsTx, AppsTx, BuildsTx, CredentialsTx, DrainsTx, DynosTx, RoutingTx, SecurityTx):
    """One unit of work. Methods raise ``NotFoundError`` / ``ConflictError``, never database errors."""
