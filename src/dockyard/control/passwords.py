"""Password logins, changes and resets, throttled per email and per source address.

``verify_login(platform, email, password, second_factor=None, context=ctx)`` is the one door for
checking a password: the dashboard's and the API's ``POST /login``, and ``POST /oauth/authorizations``
with HTTP Basic (what ``heroku login -i`` sends) all go through it. It answers the same, in the same
time, for unknown emails and wrong passwords (a dummy argon2id hash is checked for unknown ones, and
throttling is kept per email whether an account has it or not).

Second factors belong to ``dockyard.control.mfa``: this module asks its
``account_has_second_factor`` and ``verify_second_factor`` (which raises ``UnauthorizedError`` on a
wrong code). Without a second factor a correct password completes the login; with one, a missing code is answered
with ``two_factor`` (as Heroku's API does) and a wrong code counts as a failed login.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from functools import cache

from dockyard.auth import passwords as rules
from dockyard.auth import throttle
from dockyard.auth.stepup import PolicyError
from dockyard.auth.tokens import hash_token
from dockyard.control import audit, mail, mfa, notifications
from dockyard.control import sessions as session_cases
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import (
    AccessDeniedError,
    DockyardError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from dockyard.store import Tx
from dockyard.store.records import Account

log = logging.getLogger("dockyard.passwords")
INVALID = "Invalid credentials provided."
LOCKED = (
    "This account is locked after 100 failed logins in a row. Reset its password (dockyard "
    "password:reset) to unlock it."
)
RESET_LIFETIME = timedelta(minutes=30)
RESET_PREFIX = "dyr_"


# -- the second factor subsystem ------------------------------------------------------------------------


def has_second_factor(platform: Platform, account_id: str) -> bool:
    return mfa.account_has_second_factor(platform, account_id)


# -- hashing --------------------------------------------------------------------------------------------


@cache
def _hashing(costs: rules.HashCosts) -> rules.PasswordHashing:
    return rules.PasswordHashing(costs)


def hashing(platform: Platform) -> rules.PasswordHashing:
    auth = platform.settings.auth
    return _hashing(
        rules.HashCosts(
            auth.password_memory_kib, auth.password_time_cost, auth.password_parallelism
        )
    )


def check_policy(
    platform: Platform, password: str, *, account_id: str | None, email: str, name: str
) -> None:
    """``InvalidError`` (field ``password``) with the reason when ``password`` may not be chosen."""
    second = has_second_factor(platform, account_id) if account_id else False
    rejection = rules.check_new_password(password, has_second_factor=second, email=email, name=name)
    if rejection is not None:
        raise InvalidError(rejection.message, field="password")


# -- logins ---------------------------------------------------------------------------------------------


def _normalized_email(email: str) -> str:
    return email.strip().lower()[:254]


def _refuse(verdict: throttle.Verdict) -> DockyardError:
    if verdict.why == "locked":
        return AccessDeniedError(LOCKED)
    if verdict.why == "source":
        return RateLimitedError(
            "Too many failed logins from your address. Wait before trying again.",
            retry_after=verdict.retry_after,
        )
    return RateLimitedError(
        "Too many failed logins for this account. Wait before trying again.",
        retry_after=verdict.retry_after,
    )


def _check_throttles(tx: Tx, email: str, source: str, now: datetime) -> None:
    verdict = throttle.check_source(
        tx.login_failure_times(since=now - throttle.SOURCE_WINDOW, source=source), now
    )
    if not verdict.allowed:
        raise _refuse(verdict)
    verdict = throttle.check_account(tx.throttle_state(email), now)
    if not verdict.allowed:
        raise _refuse(verdict)


def _record_failure(platform: Platform, email: str, source: str, context: RequestContext) -> None:
    now = platform.clock.now()
    locked_account: Account | None = None
    with platform.store.transaction() as tx:
        before = tx.throttle_state(email)
        tx.add_login_failure(email, source)
        recent = len(tx.login_failure_times(since=throttle.window_start(before, now), email=email))
        after = throttle.after_failure(before, email, recent, now)
        tx.save_throttle_state(after)
        tx.delete_login_failures(now - max(throttle.ACCOUNT_WINDOW, throttle.SOURCE_WINDOW))
        if throttle.just_locked(before, after):
            try:
                locked_account = tx.find_account(email)
            except NotFoundError:
                locked_account = None
        audit.record(
            platform,
            audit.event(
                "auth.login",
                None,
                context,
                target=("login", source),
                outcome="failure",
                details={
                    "email": audit.value_hash("login", "email", email),
                    "locked": after.locked_at is not None,
                },
            ),
        )
    if locked_account is not None:
        notifications.notify(platform, locked_account, "account_locked", context=context)


def verify_login(
    platform: Platform,
    email: str,
    password: str,
    second_factor: str | None = None,
    *,
    context: RequestContext | None = None,
) -> Account:
    """The account whose email and password (and second factor, when it has one) these are.

    Raises ``UnauthorizedError`` ("Invalid credentials provided.") for an unknown email, a wrong password
    or a wrong code; ``PolicyError`` with id ``two_factor`` when the account has a second factor and no
    code was given; ``RateLimitedError`` (429, ``retry_after``) while throttled; ``AccessDeniedError``
    once locked after 100 failures."""
    context = context or RequestContext()
    email = _normalized_email(email)
    source = throttle.source_key(context.address)
    now = platform.clock.now()
    with platform.store.read() as tx:
        _check_throttles(tx, email, source, now)
        try:
            account: Account | None = tx.find_account(email) if email else None
        except NotFoundError:
            account = None
        stored = tx.password_hash(account.id) if account is not None else None
    hasher = hashing(platform)
    if account is None or not hasher.verify(stored, password):
        _record_failure(platform, email, source, context)
        raise UnauthorizedError(INVALID)
    if has_second_factor(platform, account.id):
        if not second_factor:
            raise PolicyError(
                "This account has two-factor authentication: send the current code of your "
                "authenticator (or a recovery code) in the Heroku-Two-Factor-Code header.",
                error_id="two_factor",
            )
        try:
            mfa.verify_second_factor(platform, account, second_factor, context)
        except (UnauthorizedError, InvalidError) as exc:
            _record_failure(platform, email, source, context)
            raise UnauthorizedError(INVALID) from exc
    _record_success(platform, account, email, stored, password, context)
    return account


def _record_success(
    platform: Platform,
    account: Account,
    email: str,
    stored: str | None,
    password: str,
    context: RequestContext,
) -> None:
    hasher = hashing(platform)
    upgraded = hasher.hash(password) if stored and hasher.needs_rehash(stored) else None
    with platform.store.transaction() as tx:
        tx.save_throttle_state(
            throttle.after_success(tx.throttle_state(email), email, platform.clock.now())
        )
        if upgraded and stored:
            tx.replace_password_hash(account.id, stored, upgraded)
        audit.record(
            platform,
            audit.event(
                "auth.login",
                account,
                context,
                target=("account", account.id, account.email),
                account_id=account.id,
                details={"method": "password"},
            ),
        )


def login(
    platform: Platform,
    email: str,
    password: str,
    second_factor: str | None = None,
    *,
    kind: str = "web",
    context: RequestContext | None = None,
) -> session_cases.StartedSession:
    """``verify_login``, then a new session (a fresh secret: never one the client had before), and a
    notification when the address or the device is new to the account."""
    context = context or RequestContext()
    account = verify_login(platform, email, password, second_factor, context=context)
    started = session_cases.start(
        platform, account, kind="cli" if kind == "cli" else "web", context=context
    )
    _notice_origin(platform, account, context)
    return started


def _notice_origin(platform: Platform, account: Account, context: RequestContext) -> None:
    device = hash_token(context.user_agent)[:32] if context.user_agent else ""
    with platform.store.transaction() as tx:
        first_login = not tx.has_login_origins(account.id)
        new_address = tx.remember_login_origin(account.id, "address", context.address or "-")
        new_device = tx.remember_login_origin(account.id, "device", device or "-")
    if not first_login and (new_address or new_device):
        notifications.notify(
            platform,
            account,
            "new_login",
            {
                "new": ", ".join(
                    w for w, n in (("address", new_address), ("device", new_device)) if n
                )
            },
            context=context,
        )


# -- setting and changing passwords ---------------------------------------------------------------------


def set_password(platform: Platform, account: Account, password: str) -> None:
    """Give ``account`` a password (the policy is checked)."""
    check_policy(platform, password, account_id=account.id, email=account.email, name=account.name)
    password_hash = hashing(platform).hash(password)
    with platform.store.transaction() as tx:
        tx.set_password_hash(account.id, password_hash)


def change_password(
    platform: Platform,
    account: Account,
    current: str,
    new: str,
    *,
    context: RequestContext,
    keep_session: str | None = None,
    second_factor: str | None = None,
) -> int:
    """Change the password: a re-authentication, so the current password is needed, and the second
    factor when the account has one. Every other session and every refresh token ends, and every
    address is told. Returns how many sessions ended."""
    with platform.store.read() as tx:
        stored = tx.password_hash(account.id)
    if stored is None:
        raise InvalidError(
            "This account has no password yet: set one with the password reset (dockyard "
            "password:reset).",
            field="current_password",
        )
    email = _normalized_email(account.email)
    source = throttle.source_key(context.address)
    with platform.store.read() as tx:
        _check_throttles(tx, email, source, platform.clock.now())
    if not hashing(platform).verify(stored, current):
        _record_failure(platform, email, source, context)
        raise UnauthorizedError("The current password is not right.")
    if has_second_factor(platform, account.id):
        if not second_factor:
            raise mfa.two_factor_error()
        mfa.verify_code(platform, account, second_factor)
    check_policy(platform, new, account_id=account.id, email=account.email, name=account.name)
    new_hash = hashing(platform).hash(new)
    with platform.store.transaction() as tx:
        audit.record(
            platform,
            audit.event(
                "auth.password.change",
                account,
                context,
                target=("account", account.id, account.email),
                account_id=account.id,
            ),
        )
        tx.set_password_hash(account.id, new_hash)
        tx.void_password_resets(account.id)
        ended = tx.delete_sessions(account.id, keep=keep_session)
    notifications.revoke_refresh_tokens(platform, account.id)
    notifications.notify(
        platform, account, "password_changed", item=("password", account.id), context=context
    )
    return ended


def disable_password(platform: Platform, account: Account, item_id: str) -> None:
    """The "this wasn't me" revoker of a password change: the password stops working until the owner
    of the mailbox resets it."""
    with platform.store.transaction() as tx:
        tx.set_password_hash(account.id, "")
        tx.void_password_resets(account.id)


# -- password resets ------------------------------------------------------------------------------------


def request_reset(platform: Platform, email: str, *, context: RequestContext) -> None:
    """Mail a reset link (valid 30 minutes, once) to ``email`` when an account has it, else a mail saying
    no account uses the address. The caller answers the same either way."""
    email = _normalized_email(email)
    token = RESET_PREFIX + secrets.token_urlsafe(24)
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        try:
            account: Account | None = tx.find_account(email)
        except NotFoundError:
            account = None
        tx.delete_expired_password_resets(now)
        tx.create_password_reset(
            account.id if account else None, hash_token(token), now + RESET_LIFETIME
        )
    if not email or "@" not in email:
        return
    if account is None:
        body = (
            "Someone (maybe you) asked to reset the password of a Dockyard account with this "
            "address, but no account uses it.\n\nIf you have an account, it has another address. "
            "If you did not ask, you can ignore this mail.\n\n— Dockyard\n"
        )
    else:
        body = (
            "Someone (maybe you) asked to reset the password of your Dockyard account.\n\n"
            "To choose a new password, open this link within 30 minutes (it works once):\n\n"
            f"  {platform.settings.api_url}/password-resets/{token}\n\n"
            f"or run:  dockyard password:reset --token {token}\n\n"
            "A new password does not replace your second factor: the next login still asks for it.\n"
            "If you did not ask, ignore this mail: your password stays as it is.\n\n— Dockyard\n"
        )
    mail.send(platform, mail.Mail(email, "[Dockyard] Reset your password", body))


def _live_reset(tx: Tx, token: str, now: datetime) -> tuple[Account, str]:
    reset = tx.password_reset_for_token(hash_token(token))
    if (
        reset is None
        or reset.account_id is None
        or reset.used_at is not None
        or reset.expires_at <= now
    ):
        raise NotFoundError(
            "This password reset link is unknown, was used already or has expired (links work "
            "once, for 30 minutes). Ask for a new one."
        )
    return tx.get_account(reset.account_id), reset.id


def reset_account(platform: Platform, token: str) -> Account:
    """The account a live reset link is for (to show its email)."""
    with platform.store.read() as tx:
        return _live_reset(tx, token, platform.clock.now())[0]


def finalize_reset(
    platform: Platform, token: str, password: str, *, context: RequestContext
) -> Account:
    """Set a new password through a reset link. The link works once; every session and every refresh
    token of the account ends; the lock after 100 failures goes. It does not log in: the next login
    still needs the second factor."""
    now = platform.clock.now()
    with platform.store.read() as tx:
        account, _ = _live_reset(tx, token, now)
    check_policy(platform, password, account_id=account.id, email=account.email, name=account.name)
    new_hash = hashing(platform).hash(password)
    email = _normalized_email(account.email)
    with platform.store.transaction() as tx:
        account, reset_id = _live_reset(tx, token, now)
        if not tx.use_password_reset(reset_id):
            raise NotFoundError("This password reset link was used already.")
        audit.record(
            platform,
            audit.event(
                "auth.password.reset",
                account,
                context,
                target=("account", account.id, account.email),
                account_id=account.id,
            ),
        )
        tx.set_password_hash(account.id, new_hash)
        tx.void_password_resets(account.id)
        tx.save_throttle_state(throttle.unlocked(tx.throttle_state(email), email))
        tx.delete_sessions(account.id)
    notifications.revoke_refresh_tokens(platform, account.id)
    notifications.notify(
        platform, account, "password_reset", item=("password", account.id), context=context
    )
    return account
