"""Session secrets, their cookie and their timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.auth import sessions
from dockyard.store.credentials import Session
from dockyard.types import AccountId

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make(last_seen: datetime) -> Session:
    return Session("s", AccountId("a"), "web", T0, T0, last_seen, sessions.expires_at(T0), "", "")


def test_secrets_are_random_prefixed_and_at_least_128_bits() -> None:
    tokens = {sessions.new_session_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert token.startswith("dys_")
    assert len(token) - 4 >= 22  # base64url of ≥16 bytes
    assert sessions.hash_session_token(token) != token


def test_the_cookie_is_host_only_secure_httponly_lax() -> None:
    header = sessions.cookie_header("dys_x")
    assert header.startswith("__Host-dockyard-session=dys_x;")
    for part in ("Path=/", "Secure", "HttpOnly", "SameSite=Lax"):
        assert part in header
    assert "Domain" not in header


def test_idle_for_30_minutes_ends_a_session() -> None:
    session = make(T0)
    assert sessions.session_state(session, T0 + timedelta(minutes=29, seconds=59)) == "active"
    assert sessions.session_state(session, T0 + timedelta(minutes=30)) == "idle"


def test_twelve_hours_end_a_session_whatever_its_activity() -> None:
    session = make(T0 + timedelta(hours=11, minutes=59))
    assert sessions.session_state(session, T0 + timedelta(hours=11, minutes=59, seconds=59)) == (
        "active"
    )
    assert sessions.session_state(session, T0 + timedelta(hours=12)) == "expired"
