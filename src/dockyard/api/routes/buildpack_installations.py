"""``/apps/{app}/buildpack-installations``: the app's ordered buildpacks (PUT replaces the list)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.schemas import (
    JSON,
    BuildpackInstallationsUpdate,
    buildpack_installation_json,
)
from dockyard.control import buildpacks
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["buildpack-installations"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/buildpack-installations")
def list_installations(app: str, account: AccountDep, plat: PlatformDep) -> list[JSON]:
    _record, found = buildpacks.list_installations(plat, account, app)
    return [buildpack_installation_json(b) for b in found]


@router.put("/apps/{app}/buildpack-installations")
def update_installations(
    app: str,
    body: BuildpackInstallationsUpdate,
    account: AccountDep,
    plat: PlatformDep,
    context: ContextDep,
) -> list[JSON]:
    _record, found = buildpacks.replace_installations(
        plat, account, app, [u.buildpack for u in body.updates], context=context
    )
    return [buildpack_installation_json(b) for b in found]
