"""``/account/sessions`` (list and end sessions) and ``/repudiations/{secret}`` ("this wasn't me").

These routes accept the dashboard's session cookie as well as a bearer credential. A request that
changes something with the cookie must also carry ``X-Requested-With`` (a header no other site can make
a browser send here), so a forged cross-site form cannot use the cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.routes.login import request_context
from dockyard.api.schemas import JSON, timestamp
from dockyard.auth import sessions as session_rules
from dockyard.control import notifications
from dockyard.control import sessions as session_cases
from dockyard.control.context import Platform
from dockyard.errors import AccessDeniedError
from dockyard.store.credentials import Session
from dockyard.store.records import Account

router = APIRouter(tags=["sessions"])
PlatformDep = Annotated[Platform, Depends(platform)]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    account: Account
    session: Session | None
    """The session the caller used (cookie or ``dys_`` bearer), None for an API key or token."""


def caller(request: Request) -> Caller:
    """The account of the session cookie, else of the bearer credential (API key, OAuth token or a
    ``dys_`` session)."""
    plat = platform(request)
    address = request_context(request).address
    cookie = request.cookies.get(session_rules.COOKIE_NAME)
    if cookie:
        if request.method not in SAFE_METHODS and not request.headers.get("x-requested-with"):
            raise AccessDeniedError(
                "Requests that change something with the session cookie must send the "
                "X-Requested-With header."
            )
        account, session = session_cases.authenticate(plat, cookie, address=address)
        return Caller(account, session)
    authorization = request.headers.get("authorization", "")
    token = authorization.partition(" ")[2].strip()
    if authorization.lower().startswith("bearer ") and session_rules.looks_like_session_token(
        token
    ):
        account, session = session_cases.authenticate(plat, token, address=address)
        return Caller(account, session)
    return Caller(current_account(request), None)


CallerDep = Annotated[Caller, Depends(caller)]


def session_json(session: Session, current: Session | None) -> JSON:
    return {
        "id": session.id,
        "kind": session.kind,
        "created_at": timestamp(session.created_at),
        "authenticated_at": timestamp(session.authenticated_at),
        "last_seen_at": timestamp(session.last_seen_at),
        "expires_at": timestamp(session.expires_at),
        "idle_expires_at": timestamp(session_rules.idle_deadline(session)),
        "ip_address": session.address or None,
        "user_agent": session.user_agent or None,
        "current": current is not None and session.id == current.id,
    }


@router.get("/account/sessions")
def list_sessions(
    who: CallerDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    items = [session_json(s, who.session) for s in session_cases.list_sessions(plat, who.account)]
    return list_response(range_, items, ("id", "created_at"))


@router.delete("/account/sessions/{session_id}")
def end_session(session_id: str, who: CallerDep, plat: PlatformDep, request: Request) -> JSON:
    ended = session_cases.revoke(
        plat, who.account, session_id, context=request_context(request, auth_method="session")
    )
    return session_json(ended, who.session)


@router.delete("/account/sessions")
def end_other_sessions(who: CallerDep, plat: PlatformDep) -> JSON:
    """End every session of the account but the caller's own."""
    ended = session_cases.revoke_all(
        plat, who.account.id, keep=who.session.id if who.session else None
    )
    return {"ended": ended}


@router.get("/repudiations/{secret}")
def repudiation_info(secret: str, plat: PlatformDep) -> JSON:
    """What a "this wasn't me" link is about. Nothing changes until it is POSTed to ``actions/revoke``
    (mail scanners open links)."""
    info = notifications.describe(plat, secret)
    return {
        "event": info.event,
        "subject": info.subject,
        "item": {"kind": info.item_kind, "id": info.item_id} if info.item_kind else None,
        "created_at": info.created_at,
        "used": info.used,
        "revoke_url": f"{plat.settings.api_url}/repudiations/{secret}/actions/revoke",
    }


@router.post("/repudiations/{secret}/actions/revoke")
def repudiate(secret: str, plat: PlatformDep, request: Request) -> JSON:
    """ "This wasn't me": revoke the item and end every session and refresh token of the account."""
    info = notifications.repudiate(plat, secret, context=request_context(request))
    return {
        "event": info.event,
        "item": {"kind": info.item_kind, "id": info.item_id} if info.item_kind else None,
        "revoked": True,
        "message": "Done: every session was ended. Reset your password now and check your "
        "second factors, SSH keys and tokens.",
    }
