"""``/apps/{app}/security``: the app's security policy (high-profile: owner and collaborators must use
WebAuthn) and ``/apps/{app}/support-access``: every operator access to the app, visible to its team."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from dockyard.api.deps import platform
from dockyard.api.policy import principal, two_factor_code
from dockyard.auth.stepup import Principal
from dockyard.control import mfa, stepup, support
from dockyard.control.access import app_for
from dockyard.control.context import Platform
from dockyard.errors import InvalidError
from dockyard.store.security import SupportAccess

router = APIRouter(tags=["security"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


class SecurityUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    high_profile: bool


def support_json(access: SupportAccess) -> dict[str, Any]:
    return {
        "id": access.id,
        "operator": {"id": access.operator_id, "email": access.operator_email},
        "reason": access.reason,
        "created_at": access.created_at.isoformat().replace("+00:00", "Z"),
        "expires_at": access.expires_at.isoformat().replace("+00:00", "Z"),
    }


@router.get("/apps/{app}/security")
def app_security(app: str, caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    with plat.store.read() as tx:
        record = app_for(tx, caller.account, app)
        return {
            "app": {"id": record.id, "name": record.name},
            "high_profile": tx.app_is_high_profile(record.id),
        }


@router.patch("/apps/{app}/security")
def update_app_security(
    app: str, body: SecurityUpdate, request: Request, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    """Owner only, with step-up. Turning high-profile on needs a WebAuthn credential of one's own."""
    with plat.store.read() as tx:
        record = app_for(tx, caller.account, app, "transfer")
        current = tx.app_is_high_profile(record.id)
        has_key = mfa.account_has_webauthn(tx, caller.account.id)
    stepup.require(
        plat, caller, "app.security", code=two_factor_code(request), high_profile=current
    )
    if body.high_profile and not has_key:
        raise InvalidError(
            "Register a security key or passkey first: high-profile apps accept only WebAuthn",
            field="high_profile",
        )
    with plat.store.transaction() as tx:
        tx.set_app_high_profile(record.id, body.high_profile)
    return {"app": {"id": record.id, "name": record.name}, "high_profile": body.high_profile}


@router.get("/apps/{app}/support-access")
def list_support_access(app: str, caller: PrincipalDep, plat: PlatformDep) -> list[dict[str, Any]]:
    return [support_json(a) for a in support.list_for_app(plat, caller.account, app)]
