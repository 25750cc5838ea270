"""Revoking an account's credentials: all at once (a password reset, "this wasn't me"), or for good when an
operator deactivates the account (offboarding).

Every credential is checked against the database on every use (API tokens, sessions, SSH keys at each
connection), so a revocation takes effect at the next request on every node: well within 60 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.control.context import Platform
from dockyard.errors import AccessDeniedError, ConflictError
from dockyard.store import Tx
from dockyard.store.records import Account


@dataclass(frozen=True)
class Revoked:
    sessions: int
    authorizations: int
    api_keys: int
    ssh_keys: int


def is_active(tx: Tx, account_id: str) -> bool:
    return tx.account_security(account_id).deactivated_at is None


def revoke_all(platform: Platform, account: Account, except_session: str | None = None) -> Revoked:
    """End every session (but ``except_session``), every OAuth grant with its access and refresh tokens,
    and every API key of the account. SSH keys stay (they are not bearer secrets a reset exposes)."""
    with platform.store.transaction() as tx:
        sessions = tx.delete_sessions(account.id, keep=except_session)
        grants = tx.revoke_account_authorizations(account.id)
        keys = tx.delete_account_api_keys(account.id)
    return Revoked(sessions, grants, keys, 0)


def deactivate(platform: Platform, operator: Account, account_ref: str) -> tuple[Account, Revoked]:
    """Offboard an account: it can no longer sign in, and its sessions, API keys, OAuth grants and SSH keys
    are revoked everywhere. Operators cannot deactivate themselves."""
    with platform.store.transaction() as tx:
        target = tx.find_account(account_ref)
        if target.id == operator.id:
            raise ConflictError("Operators cannot deactivate their own account")
        if not is_active(tx, target.id):
            raise ConflictError(f"{target.email} is deactivated already")
        tx.mark_deactivated(target.id, operator.id)
        sessions = tx.delete_sessions(target.id)
        grants = tx.revoke_account_authorizations(target.id)
        keys = tx.delete_account_api_keys(target.id)
        ssh = tx.delete_account_ssh_keys(target.id)
    return target, Revoked(sessions, grants, keys, ssh)


def require_operator(platform: Platform, account: Account) -> None:
    """Operators hold the ``admin`` role and a WebAuthn credential (phishing-resistant MFA)."""
    with platform.store.read() as tx:
        if tx.account_security(account.id).role != "admin":
            raise AccessDeniedError("This is for platform operators only")
        if not tx.list_webauthn_credentials(account.id):
            raise AccessDeniedError(
                "Operators must register a security key or passkey before using operator routes"
            )


def set_role(platform: Platform, account_ref: str, role: str) -> Account:
    """Make an account an operator (``admin``) or a plain ``user``: run on the host, never over the API."""
    if role not in ("admin", "user"):
        raise ConflictError(f"Unknown role {role!r}: admin or user")
    with platform.store.transaction() as tx:
        target = tx.find_account(account_ref)
        tx.set_account_role(target.id, role)
    return target
