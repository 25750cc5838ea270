"""The use cases record their events, and sensitive actions fail closed: with the audit writer
stopped they raise ``UnavailableError`` (503 in the API) and change nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy

from dockyard.audit.writer import AuditWriter, WriterConfig, WriterThread
from dockyard.control import accounts, apps, collaborators, config, domains, keys
from dockyard.control.accounts import NewUser, create_user
from dockyard.control.context import Platform
from dockyard.domain.requests import OPERATOR, RequestContext
from dockyard.errors import UnavailableError
from dockyard.settings import Settings
from tests.api.test_audit import ssh_key

CONTEXT = RequestContext("198.51.100.4", "test-agent/2", "req-abcdefghijklmnopqrst", "api_key")


@pytest.fixture
def writer_thread(settings: Settings) -> Iterator[WriterThread]:
    thread = WriterThread(WriterConfig.from_settings(settings))
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def audit_writer(writer_thread: WriterThread) -> AuditWriter:
    assert writer_thread.writer is not None
    return writer_thread.writer


@pytest.fixture
def owner(platform: Platform) -> NewUser:
    return create_user(platform, "owner@example.com")


@pytest.fixture
def friend(platform: Platform) -> NewUser:
    return create_user(platform, "friend@example.com")


def entries(writer: AuditWriter) -> list[dict[str, object]]:
    return [json.loads(e) for e in writer.log.entries(0, writer.log.size)]


def api_key_count(platform: Platform) -> int:
    with platform.store.engine.connect() as connection:
        return int(
            connection.execute(sqlalchemy.text("SELECT count(*) FROM api_keys")).scalar_one()
        )


Attempt = Callable[[Platform, NewUser, NewUser], object]
Unchanged = Callable[[Platform, NewUser, NewUser], bool]

SENSITIVE: dict[str, tuple[Attempt, Unchanged]] = {
    "ssh-key-add": (
        lambda p, o, f: keys.add_key(p, o.account, ssh_key(), context=CONTEXT),
        lambda p, o, f: keys.list_keys(p, o.account) == [],
    ),
    "collaborator-add": (
        lambda p, o, f: collaborators.add_collaborator(p, o.account, "shop", f.account.email),
        lambda p, o, f: collaborators.list_collaborators(p, o.account, "shop")[1] == [],
    ),
    "app-delete": (
        lambda p, o, f: apps.delete_app(p, o.account, "shop"),
        lambda p, o, f: apps.get_app(p, o.account, "shop").name == "shop",
    ),
    "config-change": (
        lambda p, o, f: config.update_config(p, o.account, "shop", {"SECRET": "x"}),
        lambda p, o, f: config.get_config(p, o.account, "shop") == {},
    ),
    "domain-add": (
        lambda p, o, f: domains.add_domain(p, o.account, "shop", "www.example.com"),
        lambda p, o, f: (
            [d.kind for d in domains.list_domains(p, o.account, "shop")[1]] == ["heroku"]
        ),
    ),
    "api-key-create": (
        lambda p, o, f: accounts.create_api_key(p, o.account.id, "ci"),
        lambda p, o, f: api_key_count(p) == 2,
    ),
    "app-create": (
        lambda p, o, f: apps.create_app(p, o.account, "other"),
        lambda p, o, f: [a.name for a in apps.list_apps(p, o.account)] == ["shop"],
    ),
}


@pytest.mark.parametrize("action", sorted(SENSITIVE))
def test_a_sensitive_action_fails_closed_and_changes_nothing_without_the_writer(
    action: str,
    platform: Platform,
    owner: NewUser,
    friend: NewUser,
    writer_thread: WriterThread,
) -> None:
    apps.create_app(platform, owner.account, "shop")
    attempt, unchanged = SENSITIVE[action]
    writer_thread.stop()
    with pytest.raises(UnavailableError, match="audit log is unavailable"):
        attempt(platform, owner, friend)
    assert unchanged(platform, owner, friend)


def test_the_same_actions_are_recorded_with_their_context(
    platform: Platform, owner: NewUser, friend: NewUser, audit_writer: AuditWriter
) -> None:
    app = apps.create_app(platform, owner.account, "shop", context=CONTEXT)
    keys.add_key(platform, owner.account, ssh_key(), context=CONTEXT)
    collaborators.add_collaborator(
        platform, owner.account, "shop", friend.account.email, context=CONTEXT
    )
    config.update_config(platform, owner.account, "shop", {"SECRET": "x", "GONE": None})
    domains.add_domain(platform, owner.account, "shop", "www.example.com", context=CONTEXT)
    apps.update_app(platform, owner.account, "shop", name="store", maintenance=True)
    apps.delete_app(platform, owner.account, "store", context=CONTEXT)
    recorded = entries(audit_writer)
    actions = [e["action"] for e in recorded]
    expected = [
        "app.create",
        "ssh_key.add",
        "collaborator.add",
        "config.update",
        "domain.add",
        "app.rename",
        "app.maintenance",
        "app.delete",
    ]
    assert [a for a in actions if a in expected] == expected
    delete = recorded[-1]
    assert delete["app"] == app.id
    assert delete["account"] == owner.account.id
    assert delete["ip"] == "198.51.100.4"
    assert delete["ua"] == "test-agent/2"
    assert delete["request_id"] == "req-abcdefghijklmnopqrst"
    assert delete["auth"] == "api_key"
    rename = next(e for e in recorded if e["action"] == "app.rename")
    assert rename["details"] == {"from": "shop", "to": "store"}
    change = next(e for e in recorded if e["action"] == "config.update")
    assert set(change["details"]["changes"]) == {"SECRET"}  # type: ignore[index]
    collaborator = next(e for e in recorded if e["action"] == "collaborator.add")
    assert collaborator["target"] == {
        "type": "collaborator",
        "id": friend.account.id,
        "name": "friend@example.com",
    }


def test_an_operator_creating_a_user_is_recorded_as_the_operator(
    platform: Platform, audit_writer: AuditWriter
) -> None:
    user = create_user(platform, "new@example.com", context=OPERATOR)
    created = [e for e in entries(audit_writer) if e["account"] == user.account.id]
    assert [e["action"] for e in created] == ["account.create", "api_key.create"]
    assert all(e["actor"] == {"type": "operator", "id": "local"} for e in created)
    assert all(e["auth"] == "operator" for e in created)
