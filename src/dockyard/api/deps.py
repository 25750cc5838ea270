"""Request dependencies: the platform handles, the authenticated account, the rate limit."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dockyard.auth.credentials import api_key_from_authorization
from dockyard.auth.ratelimit import RateLimiter
from dockyard.auth.tokens import same_token
from dockyard.control.accounts import authenticate
from dockyard.control.context import Platform
from dockyard.control.logsessions import LogSessions
from dockyard.errors import RateLimitedError, UnauthorizedError
from dockyard.store.records import Account


@dataclass
class ApiState:
    platform: Platform
    limiter: RateLimiter
    log_sessions: LogSessions
    internal_token: str


def state(request: Request) -> ApiState:
    api_state: ApiState = request.app.state.dockyard
    return api_state


def platform(request: Request) -> Platform:
    return state(request).platform


def bearer_token(request: Request) -> str | None:
    return api_key_from_authorization(request.headers.get("authorization"))


def current_account(request: Request) -> Account:
    """Authenticate the caller and charge one call to its rate-limit bucket."""
    api_state = state(request)
    account = authenticate(api_state.platform, bearer_token(request))
    allowed, remaining = api_state.limiter.take(account.id)
    request.state.rate_limit_remaining = remaining
    if not allowed:
        raise RateLimitedError(
            "Your account reached the API rate limit. Please wait a few minutes before making new requests.",
            retry_after=api_state.limiter.retry_after(account.id),
        )
    return account


def internal_caller(request: Request) -> None:
    """Only the data plane (agent, router) holding the internal token may call ``/internal``."""
    token = bearer_token(request)
    if token is None or not same_token(token, state(request).internal_token):
        raise UnauthorizedError("This endpoint is for Dockyard's own agents.")
