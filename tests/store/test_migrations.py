"""Migrations upgrade a database that already holds data."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from dockyard.store import SqlStore
from dockyard.store.migrate import alembic_config, upgrade
from dockyard.store.sql import create_store_engine


def test_upgrading_from_the_first_schema_keeps_existing_releases(store_url: str) -> None:
    engine = create_store_engine(store_url)
    config = alembic_config(store_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
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
                "created_at, updated_at) VALUES ('00000000-0000-4000-8000-000000000001', 'old-app', 'a', "
                "false, 'heroku-24', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO releases (id, app_id, version, config, description, status, created_at, "
                "updated_at) VALUES ('r1', '00000000-0000-4000-8000-000000000001', 1, '{}', "
                "'Initial release', 'succeeded', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    store = SqlStore(store_url)
    upgrade(store.engine)
    with store.read() as tx:
        (release,) = tx.list_releases("00000000-0000-4000-8000-000000000001")
        assert tx.list_buildpacks("00000000-0000-4000-8000-000000000001") == []
    store.dispose()
    assert (release.version, release.output) == (1, "")
