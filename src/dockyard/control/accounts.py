"""Accounts and API keys (minimal until the account-security issue): create a user, authenticate a key."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.auth.tokens import hash_token, new_api_key
from dockyard.control import audit
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import InvalidError, UnauthorizedError
from dockyard.store.records import Account

MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True)
class NewUser:
    account: Account
    api_key: str
    """Shown once; only its hash is stored."""


def validate_email(email: str) -> str:
    text = email.strip()
    local, _, domain = text.rpartition("@")
    if (
        not local
        or "." not in domain.strip(".")
        or len(text) > MAX_EMAIL_LENGTH
        or any(c.isspace() for c in text)
    ):
        raise InvalidError(f"{email!r} is not a valid email address", field="email")
    return text.lower()


def create_user(
    platform: Platform, email: str, name: str = "", *, context: RequestContext | None = None
) -> NewUser:
    """Create an account and its first API key; audited as ``account.create`` (by the operator when
    ``context`` is ``audit.OPERATOR``) and ``api_key.create``."""
    email = validate_email(email)
    api_key = new_api_key()
    context = context or RequestContext()
    actor = audit.Actor("operator", "local") if context.auth_method == "operator" else None
    with platform.store.transaction() as tx:
        account = tx.create_account(email, name)
        key = tx.add_api_key(account.id, hash_token(api_key), "created with the account")
        audit.record_account_event(
            platform,
            "account.create",
            account,
            context,
            actor=actor or audit.SYSTEM_ACTOR,
        )
        audit.record_account_event(
            platform,
            "api_key.create",
            account,
            context,
            actor=actor or audit.SYSTEM_ACTOR,
            target=("api_key", key.id, key.description),
        )
    return NewUser(account, api_key)


def create_api_key(
    platform: Platform,
    account_id: str,
    description: str,
    *,
    context: RequestContext | None = None,
) -> str:
    """A new API key for the account (shown once); audited, so refused while the audit log is down."""
    api_key = new_api_key()
    with platform.store.transaction() as tx:
        account = tx.get_account(account_id)
        key = tx.add_api_key(account_id, hash_token(api_key), description)
        audit.record_account_event(
            platform,
            "api_key.create",
            account,
            context,
            target=("api_key", key.id, description),
        )
    return api_key


def authenticate(platform: Platform, token: str | None) -> Account:
    """The account a bearer credential belongs to (API key, OAuth access token or session secret, see
    ``control.oauth.principal_for_token``); ``UnauthorizedError`` for a missing, unknown, expired or revoked
    one, or one of a deactivated account."""
    from dockyard.control.oauth import principal_for_token

    principal = principal_for_token(platform, token)
    if principal is None:
        raise UnauthorizedError("Invalid credentials provided.")
    return principal.account
