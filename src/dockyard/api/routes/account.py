"""``/account``, ``/account/keys``, ``/account/rate-limits``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform, state
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, KeyCreate, account_json, key_json
from dockyard.control import keys
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["account"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/account")
def account_info(account: AccountDep) -> JSON:
    return account_json(account)


@router.get("/users/~")
def self_info(account: AccountDep) -> JSON:
    return account_json(account)


@router.get("/account/rate-limits")
def rate_limits(request: Request) -> JSON:
    from dockyard.api.deps import bearer_token
    from dockyard.control.accounts import authenticate

    api_state = state(request)
    account = authenticate(api_state.platform, bearer_token(request))
    return {"remaining": api_state.limiter.remaining(account.id)}


@router.get("/account/keys")
def list_keys(
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    items = [key_json(account, k) for k in keys.list_keys(plat, account)]
    return list_response(range_, items, ("id", "fingerprint"))


@router.post("/account/keys", status_code=201)
def add_key(
    body: KeyCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    added = keys.add_key(plat, account, body.public_key, context=context)
    return JSONResponse(key_json(account, added), status_code=201)


@router.get("/account/keys/{key}")
def key_info(key: str, account: AccountDep, plat: PlatformDep) -> JSON:
    return key_json(account, keys.get_key(plat, account, key))


@router.delete("/account/keys/{key}")
def remove_key(key: str, account: AccountDep, plat: PlatformDep, context: ContextDep) -> JSON:
    return key_json(account, keys.remove_key(plat, account, key, context=context))
