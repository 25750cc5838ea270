"""``/password-resets`` (as in Heroku's schema) and ``PUT /account/password``.

``POST /password-resets`` answers the same for known and unknown emails; the link it mails works once,
for 30 minutes. Finalizing sets the password, ends every session and refresh token, and does not log
in: the next login still needs the second factor.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.deps import platform
from dockyard.api.routes.login import request_context, uniform_time
from dockyard.api.routes.sessions import CallerDep
from dockyard.api.schemas import JSON, timestamp
from dockyard.control import passwords
from dockyard.control.context import Platform
from dockyard.errors import InvalidError

router = APIRouter(tags=["password-resets"])
PlatformDep = Annotated[Platform, Depends(platform)]


class ResetBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)


class FinalizeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    password: str = Field(max_length=8192)
    password_confirmation: str | None = Field(default=None, max_length=8192)


class PasswordChangeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    current_password: str = Field(max_length=8192)
    password: str = Field(max_length=8192)


@router.post("/password-resets", status_code=202)
def create_reset(body: ResetBody, plat: PlatformDep, request: Request) -> JSONResponse:
    with uniform_time(request):
        passwords.request_reset(plat, body.email, context=request_context(request))
    return JSONResponse(
        {
            "email": body.email.strip().lower(),
            "message": "If an account uses this address, a link to reset its password was sent "
            "to it (valid 30 minutes).",
        },
        status_code=202,
    )


@router.get("/password-resets/{secret}")
def reset_info(secret: str, plat: PlatformDep) -> JSON:
    account = passwords.reset_account(plat, secret)
    return {"user": {"email": account.email, "id": account.id}}


@router.post("/password-resets/{secret}/actions/finalize")
def finalize_reset(secret: str, body: FinalizeBody, plat: PlatformDep, request: Request) -> JSON:
    if body.password_confirmation is not None and body.password_confirmation != body.password:
        raise InvalidError("The password confirmation does not match", field="password")
    account = passwords.finalize_reset(
        plat, secret, body.password, context=request_context(request)
    )
    return {
        "created_at": timestamp(plat.clock.now()),
        "user": {"email": account.email, "id": account.id},
    }


@router.put("/account/password")
def change_password(
    body: PasswordChangeBody,
    who: CallerDep,
    plat: PlatformDep,
    request: Request,
    two_factor: Annotated[str | None, Header(alias="Heroku-Two-Factor-Code")] = None,
) -> JSON:
    """Change the password (current one needed); every other session ends."""
    ended = passwords.change_password(
        plat,
        who.account,
        body.current_password,
        body.password,
        context=request_context(request, auth_method="session" if who.session else "api_key"),
        keep_session=who.session.id if who.session else None,
        second_factor=two_factor,
    )
    return {"changed": True, "sessions_ended": ended}
