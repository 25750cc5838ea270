"""Sessions of the dashboard (cookies) and of signed-in clients: start, authenticate, rotate, list, end.

The numbers (30 minutes idle, 12 hours absolute, 256-bit secrets stored as SHA-256) are in
``dockyard.auth.sessions`` and docs/security.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.auth import sessions as rules
from dockyard.control import audit
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import NotFoundError, UnauthorizedError
from dockyard.store.credentials import Session
from dockyard.store.records import Account

EXPIRED = "Your session has ended — log in again."


@dataclass(frozen=True)
class StartedSession:
    token: str
    """Shown once (cookie or CLI); only its hash is stored."""
    session: Session


def start(
    platform: Platform, account: Account, *, kind: rules.SessionKind, context: RequestContext
) -> StartedSession:
    """A new session for ``account`` (just authenticated), with a fresh secret."""
    token = rules.new_session_token()
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        tx.delete_stale_sessions(now, now - rules.IDLE_TIMEOUT)
        session = tx.create_session(
            account.id,
            rules.hash_session_token(token),
            kind=kind,
            expires_at=rules.expires_at(now),
            address=context.address,
            user_agent=context.user_agent,
        )
    return StartedSession(token, session)


def authenticate(
    platform: Platform, token: str | None, *, address: str = ""
) -> tuple[Account, Session]:
    """The account and session of a session secret, which counts as activity; ``UnauthorizedError``
    when it is unknown, idle for 30 minutes, or older than 12 hours (then it is ended for good)."""
    if not token or not rules.looks_like_session_token(token):
        raise UnauthorizedError(EXPIRED)
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        session = tx.session_for_token(rules.hash_session_token(token))
        if session is None:
            raise UnauthorizedError(EXPIRED)
        if rules.session_state(session, now) != "active":
            tx.delete_session(session.id)
            session = None
        else:
            tx.touch_session(session.id, address=address or session.address)
            account = tx.get_account(session.account_id)
    if session is None:
        raise UnauthorizedError(EXPIRED)
    return account, session


def rotate(platform: Platform, session_id: str, *, reauthenticated: bool) -> str:
    """A new secret for the session (the old one stops working at once); ``reauthenticated`` (step-up)
    also records a full authentication now. Returns the new secret."""
    token = rules.new_session_token()
    with platform.store.transaction() as tx:
        if tx.get_session(session_id) is None:
            raise UnauthorizedError(EXPIRED)
        tx.rotate_session(
            session_id, rules.hash_session_token(token), reauthenticated=reauthenticated
        )
    return token


def list_sessions(platform: Platform, account: Account) -> list[Session]:
    """The account's sessions that are still alive, oldest first."""
    now = platform.clock.now()
    with platform.store.read() as tx:
        return [s for s in tx.list_sessions(account.id) if rules.session_state(s, now) == "active"]


def find(platform: Platform, account: Account, session_id: str) -> Session:
    for session in list_sessions(platform, account):
        if session.id == session_id:
            return session
    raise NotFoundError(f"Couldn't find that session: {session_id}")


def revoke(
    platform: Platform, account: Account, session_id: str, *, context: RequestContext
) -> Session:
    """End one of the account's sessions."""
    session = find(platform, account, session_id)
    with platform.store.transaction() as tx:
        audit.record(
            platform,
            audit.event(
                "auth.session.revoke",
                account,
                context,
                target=("session", session.id),
                account_id=account.id,
            ),
        )
        tx.delete_session(session.id)
    return session


def revoke_all(platform: Platform, account_id: str, *, keep: str | None = None) -> int:
    """End every session of the account but ``keep``; returns how many ended."""
    with platform.store.transaction() as tx:
        return tx.delete_sessions(account_id, keep=keep)


def revoke_by_id(platform: Platform, account: Account, session_id: str) -> None:
    """The "this wasn't me" revoker of a session (every session ends anyway)."""
    with platform.store.transaction() as tx:
        session = tx.get_session(session_id)
        if session is not None and session.account_id == account.id:
            tx.delete_session(session_id)


def end(platform: Platform, token: str | None) -> None:
    """Log out: the session of ``token`` ends (nothing happens for an unknown one)."""
    if not token or not rules.looks_like_session_token(token):
        return
    with platform.store.transaction() as tx:
        session = tx.session_for_token(rules.hash_session_token(token))
        if session is not None:
            tx.delete_session(session.id)
