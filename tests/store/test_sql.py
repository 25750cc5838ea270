"""The SQL store against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from dockyard._util.clock import FakeClock
from dockyard.errors import ConflictError, NotFoundError
from dockyard.store import SqlStore
from dockyard.store.models import Base


def _owner_and_app(store: SqlStore, name: str = "my-app") -> tuple[str, str]:
    with store.transaction() as tx:
        account = tx.create_account("owner@example.com")
        app = tx.create_app(name, account.id, "heroku-24")
    return account.id, app.id


def test_migrations_create_exactly_the_models(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_app_names_are_globally_unique(store: SqlStore) -> None:
    owner_id, _ = _owner_and_app(store)
    with pytest.raises(ConflictError, match="already taken"), store.transaction() as tx:
        tx.create_app("my-app", owner_id, "heroku-24")


def test_a_failed_unit_of_work_changes_nothing(store: SqlStore) -> None:
    owner_id, _ = _owner_and_app(store)
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.create_app("other-app", owner_id, "heroku-24")
        tx.create_app("my-app", owner_id, "heroku-24")
    with store.read() as tx:
        assert [a.name for a in tx.list_apps()] == ["my-app"]


def test_apps_are_found_by_id_or_name(store: SqlStore) -> None:
    _, app_id = _owner_and_app(store)
    with store.read() as tx:
        assert tx.get_app(app_id).name == "my-app"
        assert tx.get_app("my-app").id == app_id
        with pytest.raises(NotFoundError):
            tx.get_app("missing-app")


def test_timestamps_come_back_timezone_aware_utc(store: SqlStore) -> None:
    _, app_id = _owner_and_app(store)
    with store.read() as tx:
        app = tx.get_app(app_id)
    assert app.created_at.tzinfo is not None
    assert app.created_at.utcoffset() == UTC.utcoffset(None)


def test_release_versions_count_up_per_app(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        other = tx.create_app("other-app", owner_id, "heroku-24")
    with store.transaction() as tx:
        versions = [
            tx.create_release(
                app_id, slug_id=None, config={}, description="x", user_id=owner_id
            ).version
            for _ in range(3)
        ]
        other_version = tx.create_release(
            other.id, slug_id=None, config={}, description="x", user_id=owner_id
        ).version
    assert versions == [1, 2, 3]
    assert other_version == 1


def test_concurrent_deploys_never_produce_the_same_version(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    errors: list[BaseException] = []

    def deploy() -> None:
        try:
            for _ in range(5):
                with store.transaction() as tx:
                    tx.create_release(
                        app_id, slug_id=None, config={}, description="d", user_id=owner_id
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.read() as tx:
        versions = [r.version for r in tx.list_releases(app_id)]
    assert sorted(versions) == list(range(1, 21))


def test_the_version_constraint_is_enforced_by_the_database(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        tx.create_release(app_id, slug_id=None, config={}, description="d", user_id=owner_id)

    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO releases (id, app_id, version, config, description, status, created_at, "
                "updated_at) VALUES ('dup', :app_id, 1, '{}', 'd', 'succeeded', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            ),
            {"app_id": app_id},
        )


def test_current_release_is_the_newest_that_succeeded(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        tx.create_release(
            app_id, slug_id=None, config={"A": "1"}, description="a", user_id=owner_id
        )
        tx.create_release(
            app_id, slug_id=None, config={}, description="b", user_id=owner_id, status="failed"
        )
    with store.read() as tx:
        current = tx.current_release(app_id)
    assert current is not None
    assert current.version == 1
    assert current.config == {"A": "1"}


def test_config_is_replaced_as_a_whole(store: SqlStore) -> None:
    _, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        tx.replace_config(app_id, {"A": "1", "B": "2"})
    with store.transaction() as tx:
        tx.replace_config(app_id, {"B": "3"})
    with store.read() as tx:
        assert tx.get_config(app_id) == {"B": "3"}


def test_formation_is_created_once_and_then_updated(store: SqlStore) -> None:
    _, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        tx.ensure_formation(app_id, "web", quantity=1, size="standard-1x")
        tx.ensure_formation(app_id, "web", quantity=5, size="standard-2x")
        tx.update_formation(app_id, "web", quantity=2, restart_dyno=1)
    with store.read() as tx:
        (entry,) = tx.list_formation(app_id)
    assert (entry.type, entry.quantity, entry.size) == ("web", 2, "standard-1x")
    assert entry.dyno_generations == {"1": 1}


def test_a_hostname_belongs_to_one_app(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        other = tx.create_app("other-app", owner_id, "heroku-24")
        tx.add_domain(app_id, "www.example.com", "custom")
    with pytest.raises(ConflictError, match="already in use"), store.transaction() as tx:
        tx.add_domain(other.id, "www.example.com", "custom")


def test_collaborators_see_shared_apps(store: SqlStore) -> None:
    _, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        friend = tx.create_account("friend@example.com")
        tx.add_collaborator(app_id, friend.id)
    with store.read() as tx:
        assert [a.id for a in tx.list_apps(friend.id)] == [app_id]
        assert tx.is_collaborator(app_id, friend.id)
        assert tx.list_collaborators(app_id)[0].email == "friend@example.com"


def test_deleting_an_app_removes_what_it_owns(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        slug = tx.create_slug(
            app_id,
            digest="a" * 64,
            size=1,
            process_types={"web": "x"},
            commit=None,
            stack="heroku-24",
        )
        tx.create_release(app_id, slug_id=slug.id, config={}, description="d", user_id=owner_id)
        tx.add_domain(app_id, "my-app.example.net", "heroku")
        tx.replace_config(app_id, {"A": "1"})
        tx.ensure_formation(app_id, "web", quantity=1, size="standard-1x")
    with store.transaction() as tx:
        tx.delete_app(app_id)
    with store.read() as tx:
        assert tx.list_apps() == []
        assert tx.list_domains() == []
        assert tx.get_config(app_id) == {}
        assert tx.slug_digests_in_use() == set()


def test_api_keys_resolve_to_their_account(store: SqlStore) -> None:
    with store.transaction() as tx:
        account = tx.create_account("Someone@Example.com")
        tx.add_api_key(account.id, "f" * 64)
    with store.read() as tx:
        found = tx.account_for_token("f" * 64)
        assert found is not None
        assert found.email == "someone@example.com"
        assert tx.account_for_token("0" * 64) is None


def test_buildpack_installations_are_replaced_as_an_ordered_list(store: SqlStore) -> None:
    _, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        tx.replace_buildpacks(app_id, [("heroku/python", "python"), ("heroku/nodejs", "nodejs")])
    with store.transaction() as tx:
        tx.replace_buildpacks(app_id, [("heroku/nodejs", "nodejs"), ("/opt/bp", "bp")])
    with store.read() as tx:
        assert [(b.ordinal, b.url) for b in tx.list_buildpacks(app_id)] == [
            (1, "heroku/nodejs"),
            (2, "/opt/bp"),
        ]


def test_a_pending_release_is_finished_once(store: SqlStore) -> None:
    owner_id, app_id = _owner_and_app(store)
    with store.transaction() as tx:
        pending = tx.create_release(
            app_id, slug_id=None, config={}, description="d", user_id=owner_id, status="pending"
        )
        assert tx.current_release(app_id) is None
        failed = tx.finish_release(pending.id, status="failed", output="boom\n")
        assert (failed.status, failed.output) == ("failed", "boom\n")
        with pytest.raises(ConflictError, match="already failed"):
            tx.finish_release(pending.id, status="succeeded", output="")


def test_sources_expire(store: SqlStore, clock: FakeClock) -> None:
    owner_id, _ = _owner_and_app(store)
    with store.transaction() as tx:
        source = tx.create_source(owner_id, expires_at=clock.now() + timedelta(hours=1))
        tx.update_source(source.id, size=10, checksum="SHA256:" + "0" * 64)
    clock.advance(3601)
    with store.transaction() as tx:
        assert tx.get_source(source.id).size == 10
        assert tx.delete_sources_expired_before(clock.now()) == [source.id]
        with pytest.raises(NotFoundError):
            tx.get_source(source.id)


def test_ssh_keys_resolve_to_their_account_by_fingerprint(store: SqlStore) -> None:
    with store.transaction() as tx:
        account = tx.create_account("dev@example.com")
        tx.add_ssh_key(account.id, "ssh-ed25519 AAAA", "SHA256:abc", "laptop")
    with store.read() as tx:
        found = tx.account_for_ssh_key("SHA256:abc")
        assert found is not None and found.email == "dev@example.com"
        assert tx.account_for_ssh_key("SHA256:other") is None


def test_commit_listeners_hear_every_committed_write_and_nothing_else(store: SqlStore) -> None:
    heard: list[str] = []
    store.commit_listeners.append(lambda: heard.append("commit"))
    _owner_and_app(store)
    with store.read() as tx:
        tx.list_apps()
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.create_app("my-app", tx.list_accounts()[0].id, "heroku-24")
    assert heard == ["commit"]
