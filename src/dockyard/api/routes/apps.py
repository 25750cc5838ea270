"""``/apps`` and ``/apps/{app}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, AppCreate, AppUpdate, app_json
from dockyard.control import apps
from dockyard.control.context import STACK, Platform
from dockyard.errors import InvalidError
from dockyard.store.records import Account

router = APIRouter(tags=["apps"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]
RangeHeader = Annotated[str | None, Header(alias="Range")]


@router.get("/apps")
def list_apps(account: AccountDep, plat: PlatformDep, range_: RangeHeader = None) -> Any:
    items = [app_json(a, plat.settings) for a in apps.list_apps(plat, account)]
    return list_response(range_, items, ("id", "name"))


@router.post("/apps", status_code=201)
def create_app(
    account: AccountDep, plat: PlatformDep, context: ContextDep, body: AppCreate | None = None
) -> JSONResponse:
    body = body or AppCreate()
    if body.stack not in (None, "", STACK):
        raise InvalidError(
            f"Stack {body.stack!r} is not available; this platform offers {STACK}", field="stack"
        )
    app = apps.create_app(plat, account, body.name or None, context=context)
    return JSONResponse(app_json(app, plat.settings), status_code=201)


@router.get("/apps/{app}")
def app_info(app: str, account: AccountDep, plat: PlatformDep) -> JSON:
    return app_json(apps.get_app(plat, account, app), plat.settings)


@router.patch("/apps/{app}")
def update_app(
    app: str, body: AppUpdate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSON:
    updated = apps.update_app(
        plat, account, app, name=body.name, maintenance=body.maintenance, context=context
    )
    return app_json(updated, plat.settings)


@router.delete("/apps/{app}")
def delete_app(app: str, account: AccountDep, plat: PlatformDep, context: ContextDep) -> JSON:
    return app_json(apps.delete_app(plat, account, app, context=context), plat.settings)


@router.get("/users/~/apps")
def list_own_apps(account: AccountDep, plat: PlatformDep, range_: RangeHeader = None) -> Any:
    return list_apps(account, plat, range_)
