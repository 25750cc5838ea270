"""``POST /login`` and ``POST /logout``: dashboard sessions in a ``__Host-`` cookie.

The login answers the same way (401, "Invalid credentials provided.") for an unknown email and a wrong
password; 429 with ``Retry-After`` while throttled; ``{"id": "two_factor"}`` (403) when the account has a
second factor and the request has no ``Heroku-Two-Factor-Code`` header (or ``second_factor`` field).
The CLI does not use this: like the Heroku CLI it asks ``POST /oauth/authorizations`` with HTTP Basic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.deps import platform
from dockyard.api.schemas import JSON, account_json, timestamp
from dockyard.auth import sessions as session_rules
from dockyard.auth import throttle
from dockyard.control import passwords
from dockyard.control import sessions as session_cases
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext

router = APIRouter(tags=["login"])
PlatformDep = Annotated[Platform, Depends(platform)]


@contextmanager
def uniform_time(request: Request) -> Iterator[None]:
    """Answer no sooner than ``auth.uniform_answer_seconds`` after the request arrived (also when it
    fails), so that how long an answer takes does not tell whether an email has an account."""
    floor = request.app.state.dockyard.platform.settings.auth.uniform_answer_seconds
    start = time.perf_counter()
    try:
        yield
    finally:
        left = floor - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)  # a timing defence at the HTTP boundary, not logic waiting for a clock


def request_context(request: Request, *, auth_method: str = "none") -> RequestContext:
    """Where the request comes from: the socket's peer, or what a trusted proxy says in
    ``X-Forwarded-For`` (``auth.trusted_proxies``)."""
    settings = request.app.state.dockyard.platform.settings
    peer = request.client.host if request.client else ""
    address = throttle.client_address(
        peer,
        request.headers.get("x-forwarded-for"),
        throttle.parse_networks(settings.auth.trusted_proxies),
    )
    return RequestContext(
        address=address,
        user_agent=request.headers.get("user-agent", "")[:300],
        request_id=request.headers.get("x-request-id", "")[:200],
        auth_method=auth_method,
    )


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)
    password: str = Field(max_length=8192)
    second_factor: str | None = Field(default=None, max_length=200)


@router.post("/login")
def login(
    body: LoginBody,
    request: Request,
    response: Response,
    plat: PlatformDep,
    two_factor: Annotated[str | None, Header(alias="Heroku-Two-Factor-Code")] = None,
) -> JSON:
    """Log in with email and password; the answer sets the session cookie. A session the browser
    already had is ended first: a login always starts a new one (no session fixation)."""
    session_cases.end(plat, request.cookies.get(session_rules.COOKIE_NAME))
    context = request_context(request, auth_method="password")
    with uniform_time(request):
        started = passwords.login(
            plat,
            body.email,
            body.password,
            two_factor or body.second_factor,
            kind="web",
            context=context,
        )
    response.headers["Set-Cookie"] = session_rules.cookie_header(started.token)
    response.headers["Cache-Control"] = "no-store"
    with plat.store.read() as tx:
        account = tx.get_account(started.session.account_id)
    return {
        "account": account_json(account),
        "session": {
            "id": started.session.id,
            "created_at": timestamp(started.session.created_at),
            "expires_at": timestamp(started.session.expires_at),
            "idle_timeout": int(session_rules.IDLE_TIMEOUT.total_seconds()),
        },
    }


@router.post("/logout", status_code=204)
def logout(request: Request, plat: PlatformDep) -> Response:
    """End the session of the cookie (if any) and clear the cookie."""
    session_cases.end(plat, request.cookies.get(session_rules.COOKIE_NAME))
    return Response(status_code=204, headers={"Set-Cookie": session_rules.clearing_cookie_header()})
