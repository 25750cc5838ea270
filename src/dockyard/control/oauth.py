"""OAuth authorizations and tokens (Heroku's ``/oauth/authorizations`` and ``/oauth/tokens``), and the
bearer credentials of the API: which account and credential a token stands for.

Kinds of authorization (``dockyard.auth.oauth.AuthorizationKind``): ``login`` grants are minted by signing
in with email, password and second factor (the Heroku CLI's ``login -i``), live at most 30 days and are
interactive (step-up applies); ``authorization`` grants are created on purpose, under step-up, for
automation, with explicit scopes and an expiry (default 90 days, at most 366); the account's legacy ``dky_``
API keys are ``global`` long-lived authorizations. Every grant has an access token and a refresh token;
exchanging a refresh token rotates both, and presenting a refresh token a second time revokes the grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dockyard.auth import oauth as rules
from dockyard.auth.stepup import Credential, CredentialKind, Principal
from dockyard.auth.tokens import API_KEY_PREFIX, hash_token
from dockyard.control.context import Platform
from dockyard.errors import NotFoundError, UnauthorizedError
from dockyard.store import Tx
from dockyard.store.records import Account
from dockyard.store.security import ApiKeyGrant, Authorization

TOUCH_INTERVAL = timedelta(seconds=60)
"""Last-used time and address are written at most this often per credential (unless the address moves)."""
INVALID = "Invalid credentials provided."


@dataclass(frozen=True)
class IssuedTokens:
    """A grant as created or refreshed: the secrets are here once and never again."""

    authorization: Authorization
    access_token: str
    access_expires_at: datetime | None
    access_token_id: str
    refresh_token: str
    refresh_expires_at: datetime | None
    refresh_token_id: str


Grant = Authorization | ApiKeyGrant


def _notify(
    platform: Platform,
    account: Account,
    event: str,
    details: dict[str, str],
    item: tuple[str, str] | None = None,
) -> None:
    from dockyard.control import notifications

    notifications.notify(platform, account, event, details, item=item)


def is_active(tx: Tx, account_id: str) -> bool:
    return tx.account_security(account_id).deactivated_at is None


# -- bearer tokens ----------------------------------------------------------------------------------


def _principal_in(
    tx: Tx, token: str, now: datetime
) -> tuple[Principal, datetime | None, str] | None:
    """The principal of a token, with the credential's last-used time and address."""
    digest = hash_token(token)
    if token.startswith(rules.ACCESS_TOKEN_PREFIX):
        found = tx.find_oauth_token(digest)
        if found is None:
            return None
        stored, grant = found
        if (
            stored.kind != "access"
            or grant.revoked_at is not None
            or (stored.expires_at is not None and now >= stored.expires_at)
            or (grant.expires_at is not None and now >= grant.expires_at)
        ):
            return None
        kind: CredentialKind = "login" if grant.kind == "login" else "authorization"
        credential = Credential(kind, grant.id, frozenset(grant.scopes), grant.authenticated_at)
        account_id, last_used, address = grant.account_id, grant.last_used_at, grant.last_used_ip
    elif token.startswith(API_KEY_PREFIX):
        key = tx.api_key_grant(digest)
        if key is None:
            return None
        credential = Credential("api-key", key.id, frozenset({"global"}), key.authenticated_at)
        account_id, last_used, address = key.account_id, key.last_used_at, key.last_used_ip
    else:
        return None
    if not is_active(tx, account_id):
        return None
    return Principal(tx.get_account(account_id), credential), last_used, address


def principal_for_token(
    platform: Platform, token: str | None, *, address: str = ""
) -> Principal | None:
    """Who a bearer token (``dkya_`` access token or ``dky_`` API key) stands for, or None. Records the
    credential's last use (time and address)."""
    if not token:
        return None
    from dockyard.auth import sessions as session_rules

    if session_rules.looks_like_session_token(token):
        return _session_principal(platform, token, address)
    now = platform.clock.now()
    with platform.store.read() as tx:
        found = _principal_in(tx, token, now)
    if found is None:
        return None
    principal, last_used, last_address = found
    if (
        last_used is None
        or now - last_used >= TOUCH_INTERVAL
        or (address and address != last_address)
    ):
        with platform.store.transaction() as tx:
            if principal.credential.kind == "api-key":
                tx.touch_api_key_grant(principal.credential.id, address)
            else:
                tx.touch_authorization(principal.credential.id, address)
    return principal


def _session_principal(platform: Platform, token: str, address: str) -> Principal | None:
    """A session secret (a dashboard cookie, or a ``dockyard login`` bearer token)."""
    from dockyard.control import sessions

    try:
        account, session = sessions.authenticate(platform, token, address=address)
    except UnauthorizedError:
        return None
    with platform.store.read() as tx:
        if not is_active(tx, account.id):
            return None
    credential = Credential("session", session.id, frozenset({"global"}), session.authenticated_at)
    return Principal(account, credential)


def authenticate(platform: Platform, token: str | None, *, address: str = "") -> Account:
    principal = principal_for_token(platform, token, address=address)
    if principal is None:
        raise UnauthorizedError(INVALID)
    return principal.account


# -- creating grants --------------------------------------------------------------------------------


def _issue(
    tx: Tx, authorization: Authorization, now: datetime, access_lifetime: timedelta | None
) -> IssuedTokens:
    access = rules.new_token(rules.ACCESS_TOKEN_PREFIX)
    refresh = rules.new_token(rules.REFRESH_TOKEN_PREFIX)
    ceiling = authorization.expires_at
    access_expires = None if access_lifetime is None else now + access_lifetime
    if ceiling is not None and (access_expires is None or access_expires > ceiling):
        access_expires = ceiling
    refresh_expires = ceiling
    if authorization.kind == "login":
        limit = authorization.created_at + rules.REFRESH_MAX_LIFETIME
        refresh_expires = limit if refresh_expires is None else min(refresh_expires, limit)
    access_row = tx.add_oauth_token(authorization.id, "access", hash_token(access), access_expires)
    refresh_row = tx.add_oauth_token(
        authorization.id, "refresh", hash_token(refresh), refresh_expires
    )
    return IssuedTokens(
        authorization,
        access,
        access_expires,
        access_row.id,
        refresh,
        refresh_expires,
        refresh_row.id,
    )


def create_login_authorization(
    platform: Platform,
    account: Account,
    *,
    scopes: Sequence[str] | None,
    description: str,
    expires_in: int | None,
) -> IssuedTokens:
    """A grant for an account that has just signed in with its password and second factor (the caller
    checked both): its sudo window starts now."""
    granted = rules.parse_scopes(scopes if scopes is not None else ["global"])
    lifetime = rules.lifetime("login", expires_in)
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        if not is_active(tx, account.id):
            raise UnauthorizedError(INVALID)
        authorization = tx.create_authorization(
            account.id,
            kind="login",
            description=description[:300],
            scopes=granted,
            expires_at=None if lifetime is None else now + lifetime,
            authenticated_at=now,
        )
        return _issue(tx, authorization, now, lifetime)


def create_authorization(
    platform: Platform,
    account: Account,
    *,
    scopes: Sequence[str] | None,
    description: str,
    expires_in: int | None,
) -> IssuedTokens:
    """A long-lived grant for automation (the caller checked step-up): explicit scopes, an expiry."""
    granted = rules.parse_scopes(scopes)
    lifetime = rules.lifetime("authorization", expires_in)
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        authorization = tx.create_authorization(
            account.id,
            kind="authorization",
            description=description[:300],
            scopes=granted,
            expires_at=None if lifetime is None else now + lifetime,
            authenticated_at=None,
        )
        issued = _issue(tx, authorization, now, lifetime)
    _notify(
        platform,
        account,
        "token_created",
        {"description": description, "scopes": ", ".join(granted)},
        item=("authorization", authorization.id),
    )
    return issued


# -- listing and revoking -----------------------------------------------------------------------------


def list_grants(platform: Platform, account: Account) -> list[Grant]:
    now = platform.clock.now()
    with platform.store.read() as tx:
        keys: list[Grant] = list(tx.list_api_key_grants(account.id))
        grants = [
            a
            for a in tx.list_authorizations(account.id)
            if a.expires_at is None or a.expires_at > now
        ]
    return keys + list(grants)


def get_grant(platform: Platform, account: Account, ref: str) -> Grant:
    """One of the account's grants; ``~`` is its (first) API key, as on Heroku."""
    for grant in list_grants(platform, account):
        if ref == grant.id or (ref == "~" and isinstance(grant, ApiKeyGrant)):
            return grant
    raise NotFoundError(f"Couldn't find that authorization: {ref}")


def revoke_grant(platform: Platform, account: Account, ref: str) -> Grant:
    grant = get_grant(platform, account, ref)
    with platform.store.transaction() as tx:
        if isinstance(grant, ApiKeyGrant):
            tx.delete_api_key(grant.id)
        else:
            tx.revoke_authorization(grant.id)
    return grant


def revoke_authorization_by_id(platform: Platform, account: Account, item_id: str) -> None:
    """For "this wasn't me" links (``control.notifications.REVOKERS``)."""
    try:
        revoke_grant(platform, account, item_id)
    except NotFoundError:
        return


def revoke_refresh_tokens(platform: Platform, account_id: str) -> int:
    """End every OAuth grant of the account, with its refresh tokens (password reset, "not me")."""
    with platform.store.transaction() as tx:
        return tx.revoke_account_authorizations(account_id)


def update_description(platform: Platform, account: Account, ref: str, description: str) -> Grant:
    grant = get_grant(platform, account, ref)
    if isinstance(grant, ApiKeyGrant):
        raise NotFoundError(f"Couldn't find that authorization: {ref}")
    with platform.store.transaction() as tx:
        tx.update_authorization_description(grant.id, description[:300])
        return tx.get_authorization(grant.id)


def regenerate_tokens(platform: Platform, account: Account, ref: str) -> IssuedTokens:
    """New access and refresh tokens for a grant; the old ones stop working."""
    grant = get_grant(platform, account, ref)
    if isinstance(grant, ApiKeyGrant):
        raise NotFoundError(
            "API keys are regenerated by revoking them and creating an authorization instead"
        )
    now = platform.clock.now()
    with platform.store.transaction() as tx:
        tx.delete_oauth_tokens(grant.id)
        remaining = None if grant.expires_at is None else grant.expires_at - now
        return _issue(tx, grant, now, remaining)


def end_session(platform: Platform, principal: Principal) -> bool:
    """``DELETE /oauth/sessions/~``: end the calling sign-in grant; False for other credentials."""
    if principal.credential.kind != "login":
        return False
    with platform.store.transaction() as tx:
        tx.revoke_authorization(principal.credential.id)
    return True


# -- refresh ------------------------------------------------------------------------------------------


def refresh(platform: Platform, refresh_token: str) -> IssuedTokens:
    """Exchange a refresh token for new access and refresh tokens. A refresh token presented a second time
    was copied: the whole grant is revoked and every token of it stops working."""
    now = platform.clock.now()
    if not refresh_token.startswith(rules.REFRESH_TOKEN_PREFIX):
        raise UnauthorizedError("Invalid refresh token.")
    reused = False
    with platform.store.transaction() as tx:
        found = tx.find_oauth_token(hash_token(refresh_token))
        if found is None or found[0].kind != "refresh":
            raise UnauthorizedError("Invalid refresh token.")
        stored, grant = found
        decision = rules.judge_refresh(
            used_at=stored.used_at,
            revoked=grant.revoked_at is not None or not is_active(tx, grant.account_id),
            expires_at=stored.expires_at,
            now=now,
        )
        if decision.outcome == "rotate" and tx.spend_refresh_token(stored.id):
            tx.delete_oauth_tokens(grant.id, "access")
            lifetime = rules.ACCESS_TOKEN_LIFETIME_ON_REFRESH
            return _issue(tx, grant, now, lifetime)
        if decision.outcome in ("reuse", "rotate"):
            reused = True
    if reused:
        with platform.store.transaction() as tx:
            tx.revoke_authorization(grant.id)
        raise UnauthorizedError(
            "This refresh token was used before: the authorization it belongs to has been revoked "
            "(a copied token is the likely cause). Sign in again."
        )
    raise UnauthorizedError("This refresh token has expired or was revoked. Sign in again.")
