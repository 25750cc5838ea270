"""``/account/two-factor``, ``/account/recovery-codes``, ``/account/webauthn/...`` and ``/account/sudo``:
second factors of the calling account, and step-up ("sudo mode") for the calling credential.

Adding or removing a factor and making new recovery codes are sensitive (``mfa.change``): they need
step-up like every other credential change. Recovery codes are shown once, in the answer that makes them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from dockyard.api.deps import platform
from dockyard.api.policy import principal, request_context, two_factor_code
from dockyard.auth.stepup import Principal
from dockyard.control import mfa, stepup
from dockyard.control.context import Platform
from dockyard.errors import InvalidError, UnauthorizedError
from dockyard.store.security import WebAuthnCredential

router = APIRouter(tags=["two-factor"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


class CodeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str


class RegistrationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    client_data_json: str
    attestation_object: str
    name: str = ""


class AssertionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    credential_id: str
    client_data_json: str
    authenticator_data: str
    signature: str


class SudoBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    password: str
    code: str | None = None
    webauthn: AssertionBody | None = None


def _credential_json(credential: WebAuthnCredential) -> dict[str, Any]:
    return {
        "id": credential.id,
        "name": credential.name,
        "credential_id": credential.credential_id,
        "created_at": credential.created_at.isoformat().replace("+00:00", "Z"),
        "last_used_at": None
        if credential.last_used_at is None
        else credential.last_used_at.isoformat().replace("+00:00", "Z"),
    }


@router.get("/account/two-factor")
def two_factor_status(caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    found = mfa.status(plat, caller.account)
    return {
        "enabled": found.enabled,
        "totp": found.totp,
        "webauthn": [_credential_json(c) for c in found.webauthn],
        "recovery_codes_left": found.recovery_codes_left,
        "required_from": found.required_from.isoformat().replace("+00:00", "Z"),
    }


@router.post("/account/two-factor/totp", status_code=201)
def begin_totp(request: Request, caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    """A new authenticator-app secret (and its ``otpauth://`` URI), pending until a code confirms it."""
    stepup.require(plat, caller, "mfa.change", code=two_factor_code(request))
    enrolment = mfa.begin_totp(plat, caller.account)
    return {"secret": enrolment.secret, "uri": enrolment.uri}


@router.put("/account/two-factor/totp")
def confirm_totp(body: CodeBody, caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    codes = mfa.confirm_totp(plat, caller.account, body.code)
    return {"enabled": True, "recovery_codes": codes}


@router.delete("/account/two-factor/totp")
def disable_totp(request: Request, caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    stepup.require(plat, caller, "mfa.change", code=two_factor_code(request))
    mfa.disable_totp(plat, caller.account)
    return {"enabled": mfa.status(plat, caller.account).enabled}


@router.post("/account/recovery-codes", status_code=201)
def regenerate_recovery_codes(
    request: Request, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    stepup.require(plat, caller, "mfa.change", code=two_factor_code(request))
    return {"recovery_codes": mfa.regenerate_recovery_codes(plat, caller.account)}


@router.post("/account/webauthn/registrations", status_code=201)
def begin_registration(request: Request, caller: PrincipalDep, plat: PlatformDep) -> Any:
    """``PublicKeyCredentialCreationOptions`` for ``navigator.credentials.create``."""
    stepup.require(plat, caller, "mfa.change", code=two_factor_code(request))
    return mfa.begin_webauthn_registration(plat, caller.account)


@router.put("/account/webauthn/registrations")
def finish_registration(
    body: RegistrationBody, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    credential, codes = mfa.finish_webauthn_registration(
        plat,
        caller.account,
        client_data_json=body.client_data_json,
        attestation_object=body.attestation_object,
        name=body.name,
    )
    return {"credential": _credential_json(credential), "recovery_codes": codes}


@router.delete("/account/webauthn/credentials/{credential}")
def remove_credential(
    credential: str, request: Request, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    stepup.require(plat, caller, "mfa.change", code=two_factor_code(request))
    return _credential_json(mfa.remove_webauthn_credential(plat, caller.account, credential))


@router.post("/account/sudo/webauthn", status_code=201)
def begin_sudo_assertion(caller: PrincipalDep, plat: PlatformDep) -> Any:
    """``PublicKeyCredentialRequestOptions`` for a step-up with a security key or passkey."""
    return mfa.begin_webauthn_assertion(plat, caller.account)


@router.post("/account/sudo")
def sudo(body: SudoBody, request: Request, caller: PrincipalDep, plat: PlatformDep) -> Any:
    """Re-authenticate fully (password, and the second factor when the account has one: a code or a
    WebAuthn assertion): the calling credential is in sudo mode for the next 15 minutes."""
    from dockyard.control import passwords

    account = caller.account
    now = plat.clock.now()
    if body.webauthn is not None:
        mfa.verify_webauthn_assertion(
            plat,
            account,
            credential_id=body.webauthn.credential_id,
            client_data_json=body.webauthn.client_data_json,
            authenticator_data=body.webauthn.authenticator_data,
            signature=body.webauthn.signature,
        )
        with plat.store.read() as tx:
            stored = tx.password_hash(account.id)
        if not passwords.hashing(plat).verify(stored, body.password):
            raise UnauthorizedError("Invalid credentials provided.")
    else:
        code = body.code or two_factor_code(request)
        passwords.verify_login(
            plat, account.email, body.password, code, context=request_context(request)
        )
    if caller.credential.kind == "session":
        raise InvalidError(
            "Dashboard sessions step up through the dashboard, which rotates the session cookie"
        )
    stepup.mark_authenticated(plat, caller, now)
    until = now + stepup.STEP_UP_WINDOW
    return {"sudo_until": until.isoformat().replace("+00:00", "Z")}
