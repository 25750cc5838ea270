"""OAuth authorizations and tokens: scopes as Heroku defines them, token formats, lifetimes, and which scope
lets a request through. Pure rules; ``dockyard.control.oauth`` stores and looks up.

Tokens carry a prefix so that leaked ones can be found by a secret scanner (``dkya_`` access tokens,
``dkyr_`` refresh tokens, ``dky_`` legacy API keys), 256 random bits each, and are stored only as SHA-256.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dockyard.errors import InvalidError

Scope = Literal["global", "identity", "read", "write", "read-protected", "write-protected"]
SCOPES: tuple[Scope, ...] = (
    "global",
    "identity",
    "read",
    "write",
    "read-protected",
    "write-protected",
)
ACCESS_TOKEN_PREFIX = "dkya_"  # noqa: S105 -- a public prefix, not a secret
REFRESH_TOKEN_PREFIX = "dkyr_"  # noqa: S105 -- a public prefix, not a secret
TOKEN_PATTERN = re.compile(r"\bdky[ar]?_[A-Za-z0-9_-]{43}\b")
"""What a leak scanner looks for: every Dockyard credential matches it."""

AuthorizationKind = Literal["login", "authorization", "api-key"]
"""``login``: minted by signing in (password and second factor), interactive, short-lived.
``authorization``: created on purpose for automation, scoped, long-lived. ``api-key``: the account's legacy
``dky_`` key, treated as a ``global`` long-lived authorization."""

LOGIN_MAX_LIFETIME = timedelta(days=30)
"""What ``heroku login`` asks for, and the most a login token lives."""
AUTHORIZATION_DEFAULT_LIFETIME = timedelta(days=90)
AUTHORIZATION_MAX_LIFETIME = timedelta(days=366)
REFRESH_MAX_LIFETIME = timedelta(days=30)
"""A login grant's refresh tokens stop working 30 days after the grant, however often rotated."""
ACCESS_TOKEN_LIFETIME_ON_REFRESH = timedelta(hours=8)


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def parse_scopes(given: Iterable[str] | None) -> tuple[Scope, ...]:
    """The scopes asked for, checked; at least one is needed."""
    if given is None:
        raise InvalidError("scope is required: one or more of " + ", ".join(SCOPES), field="scope")
    found: list[Scope] = []
    for item in given:
        for scope in SCOPES:
            if item == scope:
                if scope not in found:
                    found.append(scope)
                break
        else:
            raise InvalidError(
                f"Unknown scope {item!r}; use one or more of " + ", ".join(SCOPES), field="scope"
            )
    if not found:
        raise InvalidError("Give at least one scope: " + ", ".join(SCOPES), field="scope")
    return tuple(found)


def lifetime(
    kind: AuthorizationKind, expires_in: int | None
) -> timedelta | None:  # None: never expires (legacy API keys only)
    """How long a new authorization lives: what was asked for, within the kind's bounds."""
    if kind == "api-key":
        return None
    ceiling = LOGIN_MAX_LIFETIME if kind == "login" else AUTHORIZATION_MAX_LIFETIME
    default = LOGIN_MAX_LIFETIME if kind == "login" else AUTHORIZATION_DEFAULT_LIFETIME
    if expires_in is None:
        return default
    if isinstance(expires_in, bool) or expires_in <= 0:
        raise InvalidError("expires_in must be a positive number of seconds", field="expires_in")
    asked = timedelta(seconds=expires_in)
    if asked > ceiling:
        raise InvalidError(
            f"expires_in may be at most {int(ceiling.total_seconds())} seconds "
            f"({ceiling.days} days) for this kind of authorization",
            field="expires_in",
        )
    return asked


RouteClass = Literal["identity", "account", "protected", "app", "admin"]
"""``identity``: who am I. ``account``: the account's own credentials and settings (keys, tokens, second
factors, transfers). ``protected``: config vars and what can read them (one-off dynos). ``app``: everything
else about apps. ``admin``: operator routes."""

_IDENTITY_PATHS = frozenset({"/account", "/users/~"})
_PROTECTED = re.compile(r"^/apps/\{app\}/(config-vars|dynos)(/|$)")


def classify_route(method: str, path: str) -> RouteClass:
    """The class of a route, from its template (``/apps/{app}/config-vars``)."""
    if path.startswith("/admin"):
        return "admin"
    if path in _IDENTITY_PATHS and method in ("GET", "HEAD"):
        return "identity"
    if path.startswith(("/account", "/oauth", "/users")):
        return "account"
    if _PROTECTED.match(path) and not (path.startswith("/apps/{app}/dynos") and method == "GET"):
        return "protected"
    return "app"


def scope_allows(scopes: Iterable[str], method: str, path: str) -> bool:
    """Whether a token with ``scopes`` may make this request (Heroku's scope meanings)."""
    granted = set(scopes)
    if "global" in granted:
        return True
    route = classify_route(method, path)
    reading = method in ("GET", "HEAD", "OPTIONS")
    if route == "identity":
        return bool(granted)
    if route in ("account", "admin"):
        return False
    if route == "protected":
        if reading:
            return bool(granted & {"read-protected", "write-protected"})
        return "write-protected" in granted
    if reading:
        return bool(granted & {"read", "write", "read-protected", "write-protected"})
    return bool(granted & {"write", "write-protected"})


@dataclass(frozen=True)
class RefreshDecision:
    """What to do with a presented refresh token."""

    outcome: Literal["rotate", "reuse", "expired", "revoked"]


def judge_refresh(
    *,
    used_at: datetime | None,
    revoked: bool,
    expires_at: datetime | None,
    now: datetime,
) -> RefreshDecision:
    """A refresh token works once. Presenting one that was already used means it was copied: the caller
    revokes the whole grant (RFC 9700 §4.14.2)."""
    if revoked:
        return RefreshDecision("revoked")
    if used_at is not None:
        return RefreshDecision("reuse")
    if expires_at is not None and now >= expires_at:
        return RefreshDecision("expired")
    return RefreshDecision("rotate")
