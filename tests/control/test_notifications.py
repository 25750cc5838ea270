"""Security notifications: one mail per verified address, with a "this wasn't me" link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard._util.clock import FakeClock
from dockyard.auth.notify import EVENTS
from dockyard.control import keys, notifications
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError
from tests.control.mailbox import (
    Mailbox,
    api_client,
    body,
    delivered,
    mailbox_fixture,
    make_account,
    open_platform,
    secret_in,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc0mXCtDnn6Wj0v8IcLW3e4aD5kqD1ZcmN6rSRMcWuf dev@laptop"


@pytest.fixture
def box() -> Iterator[Mailbox]:
    yield from mailbox_fixture()


@pytest.fixture
def plat(tmp_path: Path, clock: FakeClock, box: Mailbox) -> Iterator[Platform]:
    platform = open_platform(tmp_path / "data", clock, box.url)
    yield platform
    platform.close()


@pytest.fixture
def account(plat: Platform) -> Any:
    account = make_account(plat, "dev@example.com", "correct horse battery staple")
    with plat.store.transaction() as tx:
        tx.add_account_email(account.id, "backup@example.org", verified=True)
        tx.add_account_email(account.id, "unverified@example.org", verified=False)
    return account


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_mails_every_verified_address_with_a_link(
    plat: Platform, account: Any, box: Mailbox, event: str
) -> None:
    context = RequestContext(address="192.0.2.7", user_agent="curl/8")
    sent = notifications.notify(
        plat, account, event, {"fingerprint": "SHA256:abc"}, context=context
    )
    assert sent == 2
    delivered(plat, box)
    for address in ("dev@example.com", "backup@example.org"):
        [message] = box.to(address)
        assert message["Subject"] == f"[Dockyard] {EVENTS[event].subject}"
        text = body(message)
        assert "SHA256:abc" in text and "192.0.2.7" in text
        assert "/repudiations/dyn_" in text
    assert box.to("unverified@example.org") == []


def test_the_old_address_is_told_too(plat: Platform, account: Any, box: Mailbox) -> None:
    notifications.notify(plat, account, "email_changed", extra_addresses=("old@example.com",))
    assert len(delivered(plat, box).to("old@example.com")) == 1


def test_an_item_kind_without_a_revoker_is_refused(plat: Platform, account: Any) -> None:
    with pytest.raises(InvalidError):
        notifications.notify(plat, account, "ssh_key_added", item=("printer", "1"))


def test_this_wasnt_me_removes_the_ssh_key_and_ends_sessions(
    plat: Platform, account: Any, box: Mailbox
) -> None:
    client = api_client(plat)
    client.post("/login", json={"email": account.email, "password": "correct horse battery staple"})
    key = keys.add_key(plat, account, KEY)
    notifications.notify(
        plat, account, "ssh_key_added", {"fingerprint": key.fingerprint}, item=("ssh_key", key.id)
    )
    link = secret_in(delivered(plat, box).to("dev@example.com")[-1], "dyn")
    assert (
        api_client(plat, "127.0.0.9").post(f"/repudiations/{link}/actions/revoke").status_code
        == 200
    )
    assert keys.list_keys(plat, account) == []
    assert client.get("/account/sessions").status_code == 401
