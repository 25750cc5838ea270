"""Sessions: their secrets, their cookie, and when they end.

Rules (docs/security.md): a session is a random reference (256 bits from the system CSPRNG, prefixed
``dys_`` so a leaked one can be found by grep), stored only as its SHA-256; it ends after
``IDLE_TIMEOUT`` (30 minutes) without use and ``ABSOLUTE_TIMEOUT`` (12 hours) after the login whatever
its use, and gets a new secret at login and at every re-authentication (the old one stops working).
The dashboard keeps it in a ``__Host-`` cookie: ``Secure``, ``HttpOnly``, ``SameSite=Lax``, ``Path=/``,
no ``Domain``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Literal

from dockyard.store.credentials import Session

SESSION_PREFIX = "dys_"
TOKEN_BYTES = 32
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
COOKIE_NAME = "__Host-dockyard-session"
SessionKind = Literal["web", "cli"]
SessionState = Literal["active", "idle", "expired"]


def new_session_token() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def looks_like_session_token(token: str) -> bool:
    return token.startswith(SESSION_PREFIX) and len(token) <= 100


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def expires_at(created: datetime) -> datetime:
    return created + ABSOLUTE_TIMEOUT


def session_state(session: Session, now: datetime) -> SessionState:
    if now >= session.expires_at:
        return "expired"
    if now - session.last_seen_at >= IDLE_TIMEOUT:
        return "idle"
    return "active"


def idle_deadline(session: Session) -> datetime:
    """When the session ends if it is not used before."""
    return min(session.last_seen_at + IDLE_TIMEOUT, session.expires_at)


def cookie_header(token: str) -> str:
    """The ``Set-Cookie`` value that hands ``token`` to a browser. No ``Max-Age``: the browser forgets it
    when it closes, and the server ends it after the idle or absolute timeout anyway."""
    return f"{COOKIE_NAME}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"


def clearing_cookie_header() -> str:
    return f"{COOKIE_NAME}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
