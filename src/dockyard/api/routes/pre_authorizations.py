"""``PUT /apps/{app}/pre-authorizations``: the Heroku CLI's answer to a ``two_factor`` error about an app.

A second factor in ``Heroku-Two-Factor-Code`` starts a new 15-minute sudo window for the calling
credential; the CLI then retries the request. High-profile apps need a WebAuthn re-authentication
(``/account/sudo``) instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from dockyard.api.deps import platform
from dockyard.api.policy import principal, two_factor_code
from dockyard.auth.stepup import PolicyError, Principal
from dockyard.control import mfa, stepup
from dockyard.control.context import Platform

router = APIRouter(tags=["pre-authorizations"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.put("/apps/{app}/pre-authorizations")
def pre_authorize(app: str, request: Request, caller: PrincipalDep, plat: PlatformDep) -> Any:
    """The Heroku CLI's answer to ``two_factor`` about an app: a second factor in
    ``Heroku-Two-Factor-Code`` starts a new sudo window for the calling credential."""
    from dockyard.control.apps import get_app

    record = get_app(plat, caller.account, app)
    code = two_factor_code(request)
    if code is None:
        raise mfa.two_factor_error()
    with plat.store.read() as tx:
        if tx.app_is_high_profile(record.id):
            raise PolicyError(
                f"{record.name} is a high-profile app: re-authenticate with a security key "
                "(POST /account/sudo) instead of a code.",
                error_id="webauthn_required",
                app=record.name,
            )
    mfa.verify_code(plat, caller.account, code)
    stepup.mark_authenticated(plat, caller, plat.clock.now())
    return {"app": {"id": record.id, "name": record.name}}
