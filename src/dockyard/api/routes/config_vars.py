"""``/apps/{app}/config-vars``: read, and patch (``null`` unsets a key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.control import config, releases
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["config-vars"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/config-vars")
def get_config(app: str, account: AccountDep, plat: PlatformDep) -> dict[str, str]:
    return config.get_config(plat, account, app)


@router.patch("/apps/{app}/config-vars")
def update_config(
    app: str,
    changes: Annotated[dict[str, str | None], Body()],
    account: AccountDep,
    plat: PlatformDep,
    context: ContextDep,
) -> dict[str, str]:
    return config.update_config(plat, account, app, changes, context=context)


@router.get("/apps/{app}/releases/{release}/config-vars")
def release_config(
    app: str, release: str, account: AccountDep, plat: PlatformDep
) -> dict[str, str]:
    return dict(releases.get_release(plat, account, app, release.removeprefix("v")).config)
