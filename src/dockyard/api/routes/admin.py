"""``/admin/...``: operator routes. Operators hold the ``admin`` role and a WebAuthn credential; their
actions need step-up like any sensitive action. There is no route to read or set a user's password."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from dockyard.api.deps import platform
from dockyard.api.policy import principal, two_factor_code
from dockyard.api.routes.security import support_json
from dockyard.auth.stepup import Principal
from dockyard.control import revocation, stepup, support
from dockyard.control.context import Platform

router = APIRouter(tags=["admin"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


class SupportAccessCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: str


@router.post("/admin/accounts/{account}/actions/deactivate")
def deactivate(
    account: str, request: Request, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    """Offboard an account: its sessions, API keys, OAuth grants and SSH keys are revoked at once."""
    revocation.require_operator(plat, caller.account)
    stepup.require(plat, caller, "account.deactivate", code=two_factor_code(request))
    target, revoked = revocation.deactivate(plat, caller.account, account)
    return {
        "account": {"id": target.id, "email": target.email},
        "deactivated": True,
        "revoked": {
            "sessions": revoked.sessions,
            "authorizations": revoked.authorizations,
            "api_keys": revoked.api_keys,
            "ssh_keys": revoked.ssh_keys,
        },
    }


@router.post("/admin/apps/{app}/support-access", status_code=201)
def grant_support_access(
    app: str, body: SupportAccessCreate, caller: PrincipalDep, plat: PlatformDep
) -> JSONResponse:
    return JSONResponse(
        support_json(support.grant(plat, caller.account, app, body.reason)), status_code=201
    )
