"""``/account/app-transfers``: offer an app to another account, and accept or decline an offer (Heroku's
app-transfer resource). Offering is sensitive: step-up and the app's name typed again (``confirm``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from dockyard.api.deps import platform
from dockyard.api.policy import principal, two_factor_code
from dockyard.auth.stepup import Principal
from dockyard.control import stepup, transfer
from dockyard.control.context import Platform
from dockyard.store.security import AppTransfer

router = APIRouter(tags=["app-transfers"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


class TransferCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    app: str
    recipient: str
    confirm: str | None = None
    silent: bool = False


class TransferUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    state: Literal["accepted", "declined"]


def transfer_json(item: AppTransfer, app_name: str, emails: dict[str, str]) -> dict[str, Any]:
    return {
        "id": item.id,
        "app": {"id": item.app_id, "name": app_name},
        "owner": {"id": item.sender_id, "email": emails.get(item.sender_id, "")},
        "recipient": {"id": item.recipient_id, "email": emails.get(item.recipient_id, "")},
        "state": item.state,
        "created_at": item.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": item.updated_at.isoformat().replace("+00:00", "Z"),
    }


def _one(plat: Platform, caller: Principal, transfer_id: str) -> dict[str, Any]:
    for item, name, emails in transfer.list_transfers(plat, caller.account):
        if item.id == transfer_id:
            return transfer_json(item, name, emails)
    transfer.get_transfer(plat, caller.account, transfer_id)  # raises not_found
    return {}


@router.post("/account/app-transfers", status_code=201)
def create_transfer(
    body: TransferCreate, request: Request, caller: PrincipalDep, plat: PlatformDep
) -> JSONResponse:
    from dockyard.control.apps import get_app

    app = get_app(plat, caller.account, body.app)
    with plat.store.read() as tx:
        high_profile = tx.app_is_high_profile(app.id)
    stepup.require(
        plat,
        caller,
        "app.transfer",
        code=two_factor_code(request),
        app_name=app.name,
        confirm=body.confirm,
        high_profile=high_profile,
    )
    _, offered = transfer.offer(plat, caller.account, app.id, body.recipient)
    return JSONResponse(_one(plat, caller, offered.id), status_code=201)


@router.get("/account/app-transfers")
def list_transfers(caller: PrincipalDep, plat: PlatformDep) -> list[dict[str, Any]]:
    return [transfer_json(t, n, e) for t, n, e in transfer.list_transfers(plat, caller.account)]


@router.get("/account/app-transfers/{transfer_id}")
def transfer_info(transfer_id: str, caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    return _one(plat, caller, transfer_id)


@router.patch("/account/app-transfers/{transfer_id}")
def answer_transfer(
    transfer_id: str, body: TransferUpdate, caller: PrincipalDep, plat: PlatformDep
) -> dict[str, Any]:
    transfer.answer(plat, caller.account, transfer_id, body.state)
    return _one(plat, caller, transfer_id)


@router.delete("/account/app-transfers/{transfer_id}")
def cancel_transfer(transfer_id: str, caller: PrincipalDep, plat: PlatformDep) -> dict[str, Any]:
    transfer.get_transfer(plat, caller.account, transfer_id)
    transfer.cancel_transfer_by_id(plat, caller.account, transfer_id)
    return _one(plat, caller, transfer_id)
