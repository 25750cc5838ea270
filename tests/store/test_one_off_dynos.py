"""One-off dynos' desired state and crashed dynos' next retry in the SQL store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text

from dockyard._util.clock import FakeClock
from dockyard.errors import NotFoundError
from dockyard.store import Dyno, SqlStore
from dockyard.store.migrate import alembic_config, upgrade
from dockyard.store.sql import create_store_engine
from dockyard.types import AppId, DynoName, ProcessType, ReleaseVersion


def _app(store: SqlStore) -> str:
    with store.transaction() as tx:
        account = tx.create_account("owner@example.com")
        return tx.create_app("my-app", account.id, "heroku-24").id


def _add(store: SqlStore, app_id: str, name: str, *, attach: bool = False) -> str:
    with store.transaction() as tx:
        return tx.add_one_off_dyno(
            app_id,
            name=name,
            command="bash",
            env={"TERM": "xterm"},
            size="standard-1x",
            attach=attach,
            time_to_live=3600,
            release_version=3,
        ).id


def test_a_one_off_dyno_is_stored_pending_and_read_back_whole(store: SqlStore) -> None:
    app_id = _app(store)
    dyno_id = _add(store, app_id, "run.1234", attach=True)
    with store.read() as tx:
        (dyno,) = tx.list_one_off_dynos(app_id)
    assert dyno.id == dyno_id
    assert (dyno.name, dyno.type, dyno.command, dict(dyno.env)) == (
        "run.1234",
        "run",
        "bash",
        {"TERM": "xterm"},
    )
    assert (dyno.size, dyno.attach, dyno.time_to_live, dyno.release_version) == (
        "standard-1x",
        True,
        3600,
        3,
    )
    assert dyno.state == "pending"
    assert dyno.tty is True
    assert dyno.created_at.tzinfo is not None


def test_one_off_dynos_are_listed_by_state(store: SqlStore, clock: FakeClock) -> None:
    app_id = _app(store)
    first = _add(store, app_id, "run.1")
    clock.advance(1)
    second = _add(store, app_id, "run.2")
    with store.transaction() as tx:
        tx.set_one_off_dyno_state(first, "exited")
    with store.read() as tx:
        assert [d.id for d in tx.list_one_off_dynos()] == [first, second]
        assert [d.id for d in tx.list_one_off_dynos(states=["pending"])] == [second]
        assert [d.id for d in tx.list_one_off_dynos(app_id, states=["exited", "stopped"])] == [
            first
        ]


def test_a_name_finds_the_pending_one_off_dyno_before_older_ones(
    store: SqlStore, clock: FakeClock
) -> None:
    app_id = _app(store)
    old = _add(store, app_id, "run.7")
    with store.transaction() as tx:
        tx.set_one_off_dyno_state(old, "exited")
    clock.advance(1)
    new = _add(store, app_id, "run.7")
    with store.read() as tx:
        assert tx.get_one_off_dyno(app_id, "run.7").id == new
        assert tx.get_one_off_dyno(app_id, old).id == old
        with pytest.raises(NotFoundError, match=r"run\.8"):
            tx.get_one_off_dyno(app_id, "run.8")
    with pytest.raises(NotFoundError), store.transaction() as tx:
        tx.set_one_off_dyno_state("00000000-0000-4000-8000-00000000dead", "stopped")


def test_deleting_an_app_deletes_its_one_off_dynos(store: SqlStore) -> None:
    app_id = _app(store)
    _add(store, app_id, "run.1")
    with store.transaction() as tx:
        tx.delete_app(app_id)
    with store.read() as tx:
        assert tx.list_one_off_dynos() == []


def test_reported_dynos_keep_their_next_retry_time(store: SqlStore) -> None:
    app_id = _app(store)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    crashed = Dyno(
        id="d1",
        app_id=AppId(app_id),
        name=DynoName("web.1"),
        type=ProcessType("web"),
        release_version=ReleaseVersion(1),
        state="crashed",
        command="x",
        size="standard-1x",
        address=None,
        host="h",
        started_at=now,
        updated_at=now,
        next_retry_at=now + timedelta(minutes=20),
    )
    with store.transaction() as tx:
        tx.replace_dynos("h", [crashed])
    with store.read() as tx:
        (found,) = tx.list_dynos(app_id)
    assert found.next_retry_at == now + timedelta(minutes=20)


def test_upgrading_to_0003_keeps_reported_dynos(store_url: str) -> None:
    engine = create_store_engine(store_url)
    config = alembic_config(store_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, email, name, created_at, updated_at) VALUES "
                "('a', 'a@example.com', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO apps (id, name, owner_id, maintenance, stack, restart_generation, "
                "created_at, updated_at) VALUES ('00000000-0000-4000-8000-000000000001', 'old-app', "
                "'a', false, 'heroku-24', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO dynos (id, app_id, name, type, release_version, state, command, size, "
                "address, host, started_at, updated_at) VALUES ('d1', "
                "'00000000-0000-4000-8000-000000000001', 'web.1', 'web', 1, 'up', 'x', "
                "'standard-1x', '127.0.0.1:5001', 'h', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    store = SqlStore(store_url)
    upgrade(store.engine)
    with store.read() as tx:
        (dyno,) = tx.list_dynos("00000000-0000-4000-8000-000000000001")
        assert tx.list_one_off_dynos() == []
    store.dispose()
    assert (dyno.name, dyno.state, dyno.next_retry_at) == ("web.1", "up", None)
