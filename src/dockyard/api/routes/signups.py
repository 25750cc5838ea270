"""``POST /signups`` and ``/signups/{secret}/verify``: sign-up with email verification.

``POST /signups`` answers 202 with the same body whether or not the address has an account (the mail
says which); the account is created by ``POST /signups/{secret}/verify`` with a password.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dockyard.api.deps import platform
from dockyard.api.routes.login import request_context, uniform_time
from dockyard.api.schemas import JSON, account_json, timestamp
from dockyard.control import signup
from dockyard.control.context import Platform

router = APIRouter(tags=["signups"])
PlatformDep = Annotated[Platform, Depends(platform)]


class SignupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=400)


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    password: str = Field(max_length=8192)


@router.post("/signups", status_code=202)
def create_signup(body: SignupBody, plat: PlatformDep, request: Request) -> JSONResponse:
    with uniform_time(request):
        message = signup.start(plat, body.email, body.name, context=request_context(request))
    return JSONResponse({"email": body.email.strip().lower(), "message": message}, status_code=202)


@router.get("/signups/{secret}/verify")
def signup_info(secret: str, plat: PlatformDep) -> JSON:
    pending = signup.pending(plat, secret)
    return {
        "email": pending.email,
        "name": pending.name or None,
        "expires_at": timestamp(pending.expires_at),
    }


@router.post("/signups/{secret}/verify", status_code=201)
def verify_signup(
    secret: str, body: VerifyBody, plat: PlatformDep, request: Request
) -> JSONResponse:
    account = signup.verify(plat, secret, body.password, context=request_context(request))
    return JSONResponse(account_json(account), status_code=201)
