"""``/oauth/authorizations``, ``/oauth/tokens`` and ``/oauth/sessions/~`` (Heroku's OAuth resources).

``POST /oauth/authorizations`` with HTTP Basic ``email:password`` signs in (the Heroku CLI's ``login -i``):
an account with a second factor answers 403 ``two_factor`` until the request carries the code in
``Heroku-Two-Factor-Code``. With a bearer token it creates a long-lived authorization, a sensitive action
(step-up). Token secrets appear only in the answer that creates them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from dockyard.api.deps import platform
from dockyard.api.policy import (
    basic_credentials,
    principal,
    request_context,
    two_factor_code,
)
from dockyard.auth.stepup import Principal
from dockyard.control import oauth, stepup
from dockyard.control.context import Platform
from dockyard.errors import InvalidError, NotFoundError
from dockyard.store.records import Account
from dockyard.store.security import ApiKeyGrant

router = APIRouter(tags=["oauth"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


class AuthorizationCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    scope: list[str] | None = None
    description: str = ""
    expires_in: int | None = None


class AuthorizationUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    description: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    grant: dict[str, Any] | None = None
    refresh_token: dict[str, Any] | None = None
    client: dict[str, Any] | None = None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _seconds(until: datetime | None, now: datetime) -> int | None:
    return None if until is None else max(0, int((until - now).total_seconds()))


def _user(account: Account) -> dict[str, Any]:
    return {"id": account.id, "email": account.email, "full_name": account.name or None}


def grant_json(
    grant: oauth.Grant,
    account: Account,
    now: datetime,
    issued: oauth.IssuedTokens | None = None,
) -> dict[str, Any]:
    """Heroku's oauth-authorization shape, plus ``kind``, ``expires_at`` and last use."""
    if isinstance(grant, ApiKeyGrant):
        return {
            "id": grant.id,
            "kind": "api-key",
            "description": grant.description or "API key",
            "scope": ["global"],
            "access_token": {"expires_in": None, "id": grant.id, "token": None},
            "refresh_token": None,
            "client": None,
            "grant": None,
            "session": None,
            "created_at": _iso(grant.created_at),
            "updated_at": _iso(grant.created_at),
            "expires_at": None,
            "last_used_at": _iso(grant.last_used_at),
            "last_used_ip": grant.last_used_ip or None,
            "user": _user(account),
        }
    access: dict[str, Any] = {
        "expires_in": _seconds(grant.expires_at, now),
        "id": None,
        "token": None,
    }
    refresh: dict[str, Any] | None = None
    if issued is not None:
        access = {
            "expires_in": _seconds(issued.access_expires_at, now),
            "id": issued.access_token_id,
            "token": issued.access_token,
        }
        refresh = {
            "expires_in": _seconds(issued.refresh_expires_at, now),
            "id": issued.refresh_token_id,
            "token": issued.refresh_token,
        }
    return {
        "id": grant.id,
        "kind": grant.kind,
        "description": grant.description,
        "scope": list(grant.scopes),
        "access_token": access,
        "refresh_token": refresh,
        "client": None,
        "grant": None,
        "session": None,
        "created_at": _iso(grant.created_at),
        "updated_at": _iso(grant.updated_at),
        "expires_at": _iso(grant.expires_at),
        "last_used_at": _iso(grant.last_used_at),
        "last_used_ip": grant.last_used_ip or None,
        "user": _user(account),
    }


@router.post("/oauth/authorizations", status_code=201)
def create_authorization(
    request: Request, plat: PlatformDep, body: AuthorizationCreate | None = None
) -> JSONResponse:
    """Sign in (HTTP Basic email and password, plus ``Heroku-Two-Factor-Code``), or create a long-lived
    authorization for automation (bearer token; step-up)."""
    body = body or AuthorizationCreate()
    login = basic_credentials(request)
    now = plat.clock.now()
    if login is not None:
        from dockyard.control import passwords

        account = passwords.verify_login(
            plat, login[0], login[1], two_factor_code(request), context=request_context(request)
        )
        issued = oauth.create_login_authorization(
            plat,
            account,
            scopes=body.scope,
            description=body.description or "Signed in",
            expires_in=body.expires_in,
        )
        return JSONResponse(grant_json(issued.authorization, account, now, issued), 201)
    caller = principal(request)
    stepup.require(plat, caller, "token.create", code=two_factor_code(request))
    issued = oauth.create_authorization(
        plat,
        caller.account,
        scopes=body.scope,
        description=body.description,
        expires_in=body.expires_in,
    )
    return JSONResponse(grant_json(issued.authorization, caller.account, now, issued), 201)


@router.get("/oauth/authorizations")
def list_authorizations(caller: PrincipalDep, plat: PlatformDep) -> list[dict[str, Any]]:
    now = plat.clock.now()
    return [grant_json(g, caller.account, now) for g in oauth.list_grants(plat, caller.account)]


def _get(plat: Platform, caller: Principal, ref: str) -> oauth.Grant:
    try:
        return oauth.get_grant(plat, caller.account, ref)
    except NotFoundError as exc:
        raise NotFoundError(f"Couldn't find that authorization: {ref}") from exc


@router.get("/oauth/authorizations/{authorization}")
def authorization_info(authorization: str, caller: PrincipalDep, plat: PlatformDep) -> Any:
    try:
        grant = oauth.get_grant(plat, caller.account, authorization)
    except NotFoundError as exc:
        return JSONResponse(
            {"id": "not_found", "resource": "authorization", "message": exc.message}, 404
        )
    return grant_json(grant, caller.account, plat.clock.now())


@router.patch("/oauth/authorizations/{authorization}")
def update_authorization(
    authorization: str, body: AuthorizationUpdate, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    grant = oauth.update_description(plat, caller.account, authorization, body.description)
    return grant_json(grant, caller.account, plat.clock.now())


@router.delete("/oauth/authorizations/{authorization}")
def revoke_authorization(
    authorization: str, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    grant = oauth.revoke_grant(plat, caller.account, authorization)
    return grant_json(grant, caller.account, plat.clock.now())


@router.post("/oauth/authorizations/{authorization}/actions/regenerate-tokens")
def regenerate_tokens(
    authorization: str, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    issued = oauth.regenerate_tokens(plat, caller.account, authorization)
    return grant_json(issued.authorization, caller.account, plat.clock.now(), issued)


@router.post("/oauth/tokens", status_code=201)
def create_token(body: TokenCreate, plat: PlatformDep) -> JSONResponse:
    """Exchange a refresh token (``grant.type`` ``refresh_token``, ``refresh_token.token``) for new access
    and refresh tokens. Authorization codes of third-party OAuth clients are not offered."""
    grant_type = (body.grant or {}).get("type", "refresh_token")
    token = (body.refresh_token or {}).get("token")
    if grant_type != "refresh_token" or not isinstance(token, str) or not token:
        raise InvalidError(
            "Send grant.type refresh_token and refresh_token.token (authorization codes are not "
            "offered: there are no third-party OAuth clients)",
            field="refresh_token",
        )
    issued = oauth.refresh(plat, token)
    now = plat.clock.now()
    with plat.store.read() as tx:
        account = tx.get_account(issued.authorization.account_id)
    return JSONResponse(
        {
            "id": issued.access_token_id,
            "access_token": {
                "expires_in": _seconds(issued.access_expires_at, now),
                "id": issued.access_token_id,
                "token": issued.access_token,
            },
            "refresh_token": {
                "expires_in": _seconds(issued.refresh_expires_at, now),
                "id": issued.refresh_token_id,
                "token": issued.refresh_token,
            },
            "authorization": {"id": issued.authorization.id},
            "client": None,
            "grant": {"code": None, "type": "refresh_token"},
            "session": None,
            "user": {"id": account.id},
        },
        201,
    )


@router.delete("/oauth/sessions/~")
def end_session(caller: PrincipalDep, plat: PlatformDep) -> Any:
    """``heroku logout``: end the sign-in grant this token belongs to."""
    if not oauth.end_session(plat, caller):
        return JSONResponse(
            {
                "id": "not_found",
                "resource": "session",
                "message": "This token is not a sign-in session (API keys and authorizations are "
                "revoked with DELETE /oauth/authorizations/{id}).",
            },
            404,
        )
    return {"id": caller.credential.id}
