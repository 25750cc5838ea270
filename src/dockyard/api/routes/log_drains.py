"""``/apps/{app}/log-drains``: add, list, show and remove log drains (by id, token or URL)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, LogDrainCreate, log_drain_json
from dockyard.control import drains
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["log-drains"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/log-drains")
def list_log_drains(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    _, found = drains.list_drains(plat, account, app)
    return list_response(range_, [log_drain_json(d) for d in found], ("id", "url", "token"))


@router.post("/apps/{app}/log-drains", status_code=201)
def add_log_drain(
    app: str, body: LogDrainCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    _, drain = drains.add_drain(plat, account, app, body.url, context=context)
    return JSONResponse(log_drain_json(drain), status_code=201)


@router.get("/apps/{app}/log-drains/{drain:path}")
def log_drain_info(app: str, drain: str, account: AccountDep, plat: PlatformDep) -> JSON:
    _, found = drains.get_drain(plat, account, app, drain)
    return log_drain_json(found)


@router.delete("/apps/{app}/log-drains/{drain:path}")
def remove_log_drain(
    app: str, drain: str, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSON:
    _, removed = drains.remove_drain(plat, account, app, drain, context=context)
    return log_drain_json(removed)
