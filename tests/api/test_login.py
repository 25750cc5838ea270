"""Logins: throttling per email and per source, dashboard sessions (cookie, rotation, timeouts), the
second factor, password changes and resets, and the notifications they send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard._util.clock import FakeClock
from dockyard.auth.mfa import totp
from dockyard.auth.sessions import COOKIE_NAME
from dockyard.control import mfa
from dockyard.control.context import Platform
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

EMAIL = "dev@example.com"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "seven purple otters ride north"
XHR = {"X-Requested-With": "dockyard-test"}


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
    return make_account(plat, EMAIL, PASSWORD)


def login(client: Any, password: str = PASSWORD, **headers: str) -> Any:
    return client.post("/login", json={"email": EMAIL, "password": password}, headers=headers)


def test_the_11th_attempt_within_10_minutes_gets_429_even_with_the_right_password(
    plat: Platform, account: Any, clock: FakeClock
) -> None:
    client = api_client(plat)
    for _ in range(10):
        assert login(client, "wrong password").status_code == 401
    refused = login(client)
    assert refused.status_code == 429
    assert refused.json()["id"] == "rate_limit"
    assert refused.headers["Retry-After"] == "30"
    clock.advance(10 * 60)
    assert login(client).status_code == 200


def test_delays_grow_with_each_further_failure(
    plat: Platform, account: Any, clock: FakeClock
) -> None:
    client = api_client(plat)
    for _ in range(10):
        login(client, "wrong password")
    clock.advance(30)
    assert login(client, "wrong password").status_code == 401
    assert login(client).headers["Retry-After"] == "60"
    clock.advance(60)
    login(client, "wrong password")
    assert login(client).headers["Retry-After"] == "120"


def test_100_consecutive_failures_lock_until_a_reset_with_an_email(
    plat: Platform, account: Any, box: Mailbox, clock: FakeClock
) -> None:
    client = api_client(plat)
    for _ in range(100):
        clock.advance(3600)  # slow enough never to be delayed
        assert login(client, "wrong password").status_code == 401
    clock.advance(3600)
    locked = login(client)
    assert locked.status_code == 403 and "locked" in locked.json()["message"]
    mails = delivered(plat, box).to(EMAIL)
    assert any("locked" in m["Subject"] for m in mails)
    client.post("/password-resets", json={"email": EMAIL})
    reset = next(m for m in delivered(plat, box).to(EMAIL) if "Reset" in m["Subject"])
    secret = secret_in(reset, "dyr")
    finalize = client.post(
        f"/password-resets/{secret}/actions/finalize", json={"password": NEW_PASSWORD}
    )
    assert finalize.status_code == 200
    assert login(client, NEW_PASSWORD).status_code == 200


def test_30_failures_from_one_source_get_429_and_other_sources_do_not(
    plat: Platform, account: Any
) -> None:
    attacker = api_client(plat, "127.0.0.2")
    for i in range(30):
        answer = attacker.post("/login", json={"email": f"u{i}@example.com", "password": "x"})
        assert answer.status_code == 401
    assert (
        attacker.post("/login", json={"email": "u99@example.com", "password": "x"}).status_code
        == 429
    )
    assert login(attacker).status_code == 429
    assert login(api_client(plat, "127.0.0.3")).status_code == 200


def test_forwarded_for_from_an_untrusted_peer_is_ignored(plat: Platform, account: Any) -> None:
    attacker = api_client(plat, "127.0.0.2")
    for i in range(30):
        attacker.post(
            "/login",
            json={"email": f"u{i}@example.com", "password": "x"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
    spoofed = login(attacker, **{"X-Forwarded-For": "203.0.113.200"})
    assert spoofed.status_code == 429


def test_a_login_sets_a_host_only_secure_httponly_lax_cookie(plat: Platform, account: Any) -> None:
    answer = login(api_client(plat))
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=dys_")
    for part in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert part in cookie
    assert "domain" not in cookie.lower()


def test_a_session_held_before_login_is_not_the_one_after(plat: Platform, account: Any) -> None:
    client = api_client(plat)
    login(client)
    before = client.cookies[COOKIE_NAME]
    login(client)
    after = client.cookies[COOKIE_NAME]
    assert before != after
    stale = api_client(plat)
    stale.cookies.set(COOKIE_NAME, before)
    assert stale.get("/account/sessions").status_code == 401


def test_sessions_end_after_30_minutes_idle(plat: Platform, account: Any, clock: FakeClock) -> None:
    client = api_client(plat)
    login(client)
    clock.advance(29 * 60)
    assert client.get("/account/sessions").status_code == 200  # activity
    clock.advance(29 * 60)
    assert client.get("/account/sessions").status_code == 200
    clock.advance(30 * 60 + 1)
    assert client.get("/account/sessions").status_code == 401


def test_sessions_end_12_hours_after_login_whatever_the_activity(
    plat: Platform, account: Any, clock: FakeClock
) -> None:
    client = api_client(plat)
    login(client)
    for _ in range(24):
        clock.advance(29 * 60 + 59)
        assert client.get("/account/sessions").status_code == 200
    clock.advance(25)  # 12 h and 1 s after the login
    assert client.get("/account/sessions").status_code == 401


def test_logout_ends_the_session_for_good(plat: Platform, account: Any) -> None:
    client = api_client(plat)
    login(client)
    token = client.cookies[COOKIE_NAME]
    assert client.post("/logout").status_code == 204
    replay = api_client(plat)
    replay.cookies.set(COOKIE_NAME, token)
    assert replay.get("/account/sessions").status_code == 401


def test_users_list_and_end_their_sessions(plat: Platform, account: Any) -> None:
    phone, laptop = api_client(plat, "127.0.0.4"), api_client(plat, "127.0.0.5")
    login(phone)
    login(laptop)
    listed = laptop.get("/account/sessions").json()
    assert len(listed) == 2
    phone_id = next(s["id"] for s in listed if not s["current"])
    assert laptop.delete(f"/account/sessions/{phone_id}").status_code == 403  # no X-Requested-With
    assert laptop.delete(f"/account/sessions/{phone_id}", headers=XHR).status_code == 200
    assert phone.get("/account/sessions").status_code == 401
    assert [s["current"] for s in laptop.get("/account/sessions").json()] == [True]


def test_a_password_change_ends_every_other_session_and_is_notified(
    plat: Platform, account: Any, box: Mailbox
) -> None:
    clients = [api_client(plat, f"127.0.0.{n}") for n in (4, 5, 6)]
    for client in clients:
        login(client)
    changed = clients[0].put(
        "/account/password",
        json={"current_password": PASSWORD, "password": NEW_PASSWORD},
        headers=XHR,
    )
    assert changed.json() == {"changed": True, "sessions_ended": 2}
    assert clients[0].get("/account/sessions").status_code == 200
    assert [c.get("/account/sessions").status_code for c in clients[1:]] == [401, 401]
    assert any(
        m["Subject"] == "[Dockyard] Your password was changed"
        for m in delivered(plat, box).to(EMAIL)
    )


def test_a_password_change_needs_the_current_password(plat: Platform, account: Any) -> None:
    client = api_client(plat)
    login(client)
    wrong = client.put(
        "/account/password",
        json={"current_password": "not it at all", "password": NEW_PASSWORD},
        headers=XHR,
    )
    assert wrong.status_code == 401
    assert login(api_client(plat), NEW_PASSWORD).status_code == 401


def test_a_reset_link_works_once_within_30_minutes_and_ends_every_session(
    plat: Platform, account: Any, box: Mailbox, clock: FakeClock
) -> None:
    logged_in = api_client(plat)
    login(logged_in)
    anonymous = api_client(plat, "127.0.0.9")
    anonymous.post("/password-resets", json={"email": EMAIL})
    secret = secret_in(delivered(plat, box).to(EMAIL)[-1], "dyr")
    assert anonymous.get(f"/password-resets/{secret}").json()["user"]["email"] == EMAIL
    clock.advance(29 * 60)
    done = anonymous.post(
        f"/password-resets/{secret}/actions/finalize", json={"password": NEW_PASSWORD}
    )
    assert done.status_code == 200
    assert "set-cookie" not in done.headers  # a reset does not log in
    again = anonymous.post(
        f"/password-resets/{secret}/actions/finalize", json={"password": PASSWORD}
    )
    assert again.status_code == 404
    assert logged_in.get("/account/sessions").status_code == 401
    assert login(api_client(plat), NEW_PASSWORD).status_code == 200
    anonymous.post("/password-resets", json={"email": EMAIL})
    late = secret_in(delivered(plat, box).to(EMAIL)[-1], "dyr")
    clock.advance(30 * 60)
    expired = anonymous.post(
        f"/password-resets/{late}/actions/finalize", json={"password": PASSWORD}
    )
    assert expired.status_code == 404


def test_a_reset_never_bypasses_the_second_factor(
    plat: Platform, account: Any, box: Mailbox, clock: FakeClock
) -> None:
    enrolment = mfa.begin_totp(plat, account)
    mfa.confirm_totp(plat, account, totp(enrolment.secret, clock.now()))
    clock.advance(60)
    client = api_client(plat)
    client.post("/password-resets", json={"email": EMAIL})
    reset = [m for m in delivered(plat, box).to(EMAIL) if "Reset" in m["Subject"]][-1]
    finalized = client.post(
        f"/password-resets/{secret_in(reset, 'dyr')}/actions/finalize",
        json={"password": "short but mfa"},  # 8+ is enough with a second factor
    )
    assert finalized.status_code == 200
    asked = login(client, "short but mfa")
    assert asked.status_code == 403 and asked.json()["id"] == "two_factor"
    wrong = login(client, "short but mfa", **{"Heroku-Two-Factor-Code": "000000"})
    assert wrong.status_code == 401
    code = totp(enrolment.secret, clock.now())
    assert login(client, "short but mfa", **{"Heroku-Two-Factor-Code": code}).status_code == 200


def test_a_login_from_a_new_address_is_notified_and_this_wasnt_me_revokes(
    plat: Platform, account: Any, box: Mailbox
) -> None:
    owner = api_client(plat, "127.0.0.4")
    login(owner)
    assert delivered(plat, box).to(EMAIL) == []  # the first login of an account is not news
    intruder = api_client(plat, "127.0.0.66")
    login(intruder)
    notice = delivered(plat, box).to(EMAIL)[-1]
    assert notice["Subject"] == "[Dockyard] New login to your account"
    assert "127.0.0.66" in body(notice)
    secret = secret_in(notice, "dyn")
    info = owner.get(f"/repudiations/{secret}")  # opening the link changes nothing
    assert info.json()["event"] == "new_login"
    assert intruder.get("/account/sessions").status_code == 200
    assert owner.post(f"/repudiations/{secret}/actions/revoke").status_code == 200
    assert intruder.get("/account/sessions").status_code == 401
    assert owner.get("/account/sessions").status_code == 401
    assert owner.post(f"/repudiations/{secret}/actions/revoke").status_code == 404


def test_this_wasnt_me_after_a_password_change_disables_the_new_password(
    plat: Platform, account: Any, box: Mailbox
) -> None:
    intruder = api_client(plat)
    login(intruder)
    intruder.put(
        "/account/password",
        json={"current_password": PASSWORD, "password": NEW_PASSWORD},
        headers=XHR,
    )
    notice = next(m for m in delivered(plat, box).to(EMAIL) if "changed" in m["Subject"])
    api_client(plat, "127.0.0.8").post(f"/repudiations/{secret_in(notice, 'dyn')}/actions/revoke")
    assert intruder.get("/account/sessions").status_code == 401
    assert login(api_client(plat), NEW_PASSWORD).status_code == 401
