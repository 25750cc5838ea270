"""Accounts and API keys (minimal until the account-security issue): create a user, authenticate a key."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.auth.tokens import hash_token, new_api_key
from dockyard.control.context import Platform
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


def create_user(platform: Platform, email: str, name: str = "") -> NewUser:
    email = validate_email(email)
    api_key = new_api_key()
    with platform.store.transaction() as tx:
        account = tx.create_account(email, name)
        tx.add_api_key(account.id, hash_token(api_key), "created with the account")
    return NewUser(account, api_key)


def create_api_key(platform: Platform, account_id: str, description: str) -> str:
    api_key = new_api_key()
    with platform.store.transaction() as tx:
        tx.add_api_key(account_id, hash_token(api_key), description)
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
