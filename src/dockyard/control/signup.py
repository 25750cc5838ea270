"""Sign-up with email verification: the account exists only once its address is verified.

``start`` answers the same, in the same time, whether or not the address already has an account: it
stores a pending sign-up and mails either a verification link (valid 24 hours, 128+ bits, stored
hashed) or, to an address that has an account already, a note saying so. ``verify`` with the link's
secret and a password (checked against the password policy) creates the account, its verified address
and its password; until then nothing can log in, hold a key or own an app.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from dockyard.auth.tokens import hash_token
from dockyard.control import audit, mail
from dockyard.control import passwords as password_cases
from dockyard.control.accounts import validate_email
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import ConflictError, InvalidError, NotFoundError
from dockyard.store.credentials import Signup
from dockyard.store.records import Account

LINK_LIFETIME = timedelta(hours=24)
LINK_PREFIX = "dyv_"
MAX_NAME_LENGTH = 200
ANSWER = (
    "Check your mailbox: we sent a message to that address. Follow its link within 24 hours to "
    "finish signing up."
)
"""What every sign-up is told, whether the address is new or not."""


def start(platform: Platform, email: str, name: str = "", *, context: RequestContext) -> str:
    """Begin a sign-up; returns ``ANSWER``. ``InvalidError`` only for a malformed address or name (which
    says nothing about existing accounts)."""
    email = validate_email(email)
    name = " ".join(name.split())
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidError(f"The name is longer than {MAX_NAME_LENGTH} characters", field="name")
    token = LINK_PREFIX + secrets.token_urlsafe(24)
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        tx.delete_expired_signups(now)
        try:
            tx.find_account(email)
            taken = True
        except NotFoundError:
            taken = False
        # Stored for taken addresses too (its link can never create an account), so both cost the same.
        tx.create_signup(email, name, hash_token(token), now + LINK_LIFETIME)
    if taken:
        body = (
            "Someone (maybe you) tried to sign up for Dockyard with this address, but it already "
            "has an account.\n\nIf it was you: log in (dockyard login), or reset your password "
            "(dockyard password:reset) if you forgot it.\nIf it was not you, ignore this mail; "
            "nothing changed.\n\n— Dockyard\n"
        )
        subject = "[Dockyard] You already have an account"
    else:
        body = (
            "Welcome to Dockyard! To finish signing up, confirm this address and choose a password "
            "within 24 hours (the link works once):\n\n"
            f"  {platform.settings.api_url}/signups/{token}/verify\n\n"
            f"or run:  dockyard signup --token {token}\n\n"
            "If you did not sign up, ignore this mail: no account is created.\n\n— Dockyard\n"
        )
        subject = "[Dockyard] Confirm your email address"
    mail.send(platform, mail.Mail(email, subject, body))
    return ANSWER


def pending(platform: Platform, token: str) -> Signup:
    """The sign-up of a live verification link."""
    with platform.store.read() as tx:
        signup = tx.signup_for_token(hash_token(token))
    if signup is None or signup.expires_at <= platform.clock.now():
        raise NotFoundError(
            "This sign-up link is unknown, was used already or has expired (links work once, for "
            "24 hours). Sign up again."
        )
    return signup


def verify(platform: Platform, token: str, password: str, *, context: RequestContext) -> Account:
    """Finish a sign-up: the account is created with its verified address and ``password``."""
    signup = pending(platform, token)
    password_cases.check_policy(
        platform, password, account_id=None, email=signup.email, name=signup.name
    )
    password_hash = password_cases.hashing(platform).hash(password)
    with platform.store.transaction() as tx:
        if tx.signup_for_token(hash_token(token)) is None:
            raise NotFoundError("This sign-up link was used already.")
        tx.delete_signups(signup.email)
        try:
            account = tx.create_account(signup.email, signup.name)
        except ConflictError as exc:
            raise NotFoundError(
                "This sign-up link is unknown, was used already or has expired. Sign up again, "
                "or log in if you have an account."
            ) from exc
        tx.add_account_email(account.id, signup.email, verified=True)
        tx.set_password_hash(account.id, password_hash)
        audit.record(
            platform,
            audit.event(
                "account.create",
                account,
                context,
                target=("account", account.id, account.email),
                account_id=account.id,
                details={"via": "signup"},
            ),
        )
    return account
