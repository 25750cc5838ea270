"""Shared fixtures: settings on a temporary data directory, a migrated store on SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy

from dockyard._util.clock import FakeClock
from dockyard.audit.writer import AuditWriter, WriterConfig, running
from dockyard.control.context import Platform
from dockyard.settings import Settings, load_settings
from dockyard.store import SqlStore
from dockyard.store.migrate import upgrade

POSTGRES_URL_VAR = "DOCKYARD_TEST_DATABASE_URL"


def make_settings(data_dir: Path, **env: str) -> Settings:
    # Unit tests run dynos as plain processes unless they ask for the sandbox themselves.
    base = {
        "DOCKYARD_DATA_DIR": str(data_dir),
        "HOME": str(data_dir),
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_AGENT_RUNTIME": "process",
        "DOCKYARD_BUILD_SANDBOX": "uid",
    }
    base.update(env)
    return load_settings(base)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        pytest.fail(
            f"{POSTGRES_URL_VAR} is not set: run the suite with `make test`, or export "
            f"{POSTGRES_URL_VAR}=$(scripts/test-postgres start)"
        )
    return url


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh PostgreSQL schema, dropped after the test."""
    url = postgres_url().replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[SqlStore]:
    sql_store = SqlStore(store_url, clock=clock)
    upgrade(sql_store.engine)
    yield sql_store
    sql_store.dispose()


@pytest.fixture
def audit_writer(settings: Settings) -> Iterator[AuditWriter]:
    """A real audit writer for ``settings`` (in a thread): audited use cases fail closed without one."""
    with running(WriterConfig.from_settings(settings)) as writer:
        yield writer


@pytest.fixture
def start_audit_writer() -> Iterator[Callable[[Settings], AuditWriter]]:
    """Start a real audit writer for other settings (stopped after the test), for tests that open
    their own ``Platform``."""
    with contextlib.ExitStack() as stack:
        yield lambda settings: stack.enter_context(running(WriterConfig.from_settings(settings)))


@pytest.fixture
def platform(settings: Settings, clock: FakeClock, audit_writer: AuditWriter) -> Iterator[Platform]:
    plat = Platform.open(settings, clock=clock)
    yield plat
    plat.close()
