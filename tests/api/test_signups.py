"""Sign-up: verification by email before the account exists; the same answers, in the same time, for
known and unknown addresses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard._util.clock import FakeClock
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

PASSWORD = "correct horse battery staple"


@pytest.fixture
def box() -> Iterator[Mailbox]:
    yield from mailbox_fixture()


@pytest.fixture
def plat(tmp_path: Path, clock: FakeClock, box: Mailbox) -> Iterator[Platform]:
    platform = open_platform(tmp_path / "data", clock, box.url)
    yield platform
    platform.close()


def test_sign_up_verify_by_mail_then_log_in(plat: Platform, box: Mailbox) -> None:
    client = api_client(plat)
    answer = client.post("/signups", json={"email": "Ann@Example.com", "name": "Annabel Lee"})
    assert answer.status_code == 202
    # Nothing exists and nothing logs in before the address is verified.
    with plat.store.read() as tx:
        assert tx.list_accounts() == []
    assert (
        client.post("/login", json={"email": "ann@example.com", "password": PASSWORD}).status_code
        == 401
    )
    mails = delivered(plat, box).to("ann@example.com")
    assert [m["Subject"] for m in mails] == ["[Dockyard] Confirm your email address"]
    secret = secret_in(mails[0], "dyv")
    assert client.get(f"/signups/{secret}/verify").json()["email"] == "ann@example.com"
    weak = client.post(f"/signups/{secret}/verify", json={"password": "Annabel 123456789"})
    assert weak.status_code == 422 and "built on 'annabel'" in weak.text
    created = client.post(f"/signups/{secret}/verify", json={"password": PASSWORD})
    assert created.status_code == 201 and created.json()["email"] == "ann@example.com"
    assert client.post(f"/signups/{secret}/verify", json={"password": PASSWORD}).status_code == 404
    login = client.post("/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert login.status_code == 200
    assert [e.action for e in plat.audit.events if e.action == "account.create"] == [
        "account.create"
    ]


def test_a_sign_up_link_expires_after_24_hours(
    plat: Platform, box: Mailbox, clock: FakeClock
) -> None:
    client = api_client(plat)
    client.post("/signups", json={"email": "late@example.com"})
    secret = secret_in(delivered(plat, box).to("late@example.com")[0], "dyv")
    clock.advance(24 * 3600)
    assert client.post(f"/signups/{secret}/verify", json={"password": PASSWORD}).status_code == 404


def test_signing_up_with_a_known_address_answers_the_same_and_tells_the_owner(
    plat: Platform, box: Mailbox
) -> None:
    make_account(plat, "known@example.com", PASSWORD)
    client = api_client(plat)
    known = client.post("/signups", json={"email": "known@example.com"})
    unknown = client.post("/signups", json={"email": "new@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json()["message"] == unknown.json()["message"]
    note = delivered(plat, box).to("known@example.com")
    assert [m["Subject"] for m in note] == ["[Dockyard] You already have an account"]
    assert "dyv_" not in body(note[0])


def _same_time(a: list[float], b: list[float]) -> None:
    ma, mb = statistics.median(a), statistics.median(b)
    assert abs(ma - mb) / max(ma, mb) < 0.10, (ma, mb)


@pytest.mark.parametrize("route", ["/signups", "/password-resets", "/login"])
def test_known_and_unknown_emails_get_the_same_answer_in_the_same_time(
    tmp_path: Path, clock: FakeClock, route: str
) -> None:
    """Interleaved requests for known and unknown addresses (each address once, so no throttle) from
    many sources: identical status and body, medians within 10 %."""
    plat = open_platform(
        tmp_path / "data",
        clock,
        DOCKYARD_AUTH_TRUSTED_PROXIES="10.0.0.1",
        DOCKYARD_AUTH_UNIFORM_ANSWER_SECONDS="0.06",
    )
    rounds = 31
    for i in range(rounds):
        make_account(plat, f"known{i}@example.com", PASSWORD)
    client = api_client(plat, address="10.0.0.1")
    answers: dict[str, set[tuple[int, str]]] = {"known": set(), "unknown": set()}
    times: dict[str, list[float]] = {"known": [], "unknown": []}

    def call(kind: str, i: int) -> None:
        payload = {"email": f"{kind}{i}@example.com", "password": "wrong password of ours"}
        headers = {"X-Forwarded-For": f"198.51.100.{i % 250}"}
        start = time.perf_counter()
        response = client.post(route, json=payload, headers=headers)
        times[kind].append(time.perf_counter() - start)
        answers[kind].add((response.status_code, response.text.replace(f"{kind}{i}@", "x@")))

    call("known", 0)  # warm-up
    call("unknown", 0)
    times = {"known": [], "unknown": []}
    for i in range(1, rounds):
        first, second = ("known", "unknown") if i % 2 else ("unknown", "known")
        call(first, i)
        call(second, i)
    assert answers["known"] == answers["unknown"]
    assert len(answers["known"]) == 1
    _same_time(times["known"], times["unknown"])
    plat.close()
