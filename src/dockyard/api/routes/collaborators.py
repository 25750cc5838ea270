"""``/apps/{app}/collaborators``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, CollaboratorCreate, collaborator_json
from dockyard.control import collaborators
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["collaborators"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/collaborators")
def list_collaborators(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, found = collaborators.list_collaborators(plat, account, app)
    return list_response(range_, [collaborator_json(record, c) for c in found], ("id",))


@router.post("/apps/{app}/collaborators", status_code=201)
def add_collaborator(
    app: str, body: CollaboratorCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    record, added = collaborators.add_collaborator(plat, account, app, body.user, context=context)
    return JSONResponse(collaborator_json(record, added), status_code=201)


@router.get("/apps/{app}/collaborators/{collaborator}")
def collaborator_info(app: str, collaborator: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, found = collaborators.get_collaborator(plat, account, app, collaborator)
    return collaborator_json(record, found)


@router.delete("/apps/{app}/collaborators/{collaborator}")
def remove_collaborator(
    app: str, collaborator: str, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSON:
    record, removed = collaborators.remove_collaborator(
        plat, account, app, collaborator, context=context
    )
    return collaborator_json(record, removed)
