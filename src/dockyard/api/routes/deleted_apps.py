"""``/account/deleted-apps``: the caller's soft-deleted apps (restorable for 7 days), and restoring one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from dockyard.api.deps import platform
from dockyard.api.policy import principal
from dockyard.api.schemas import app_json
from dockyard.auth.stepup import Principal
from dockyard.control import deletions
from dockyard.control.context import Platform

router = APIRouter(tags=["deleted-apps"])
PrincipalDep = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/account/deleted-apps")
def list_deleted(caller: PrincipalDep, plat: PlatformDep) -> list[dict[str, Any]]:
    return [
        {
            "app": {"id": d.app_id, "name": name},
            "deleted_at": d.deleted_at.isoformat().replace("+00:00", "Z"),
            "purge_at": d.purge_at.isoformat().replace("+00:00", "Z"),
        }
        for d, name in deletions.list_deleted(plat, caller.account)
    ]


@router.post("/account/deleted-apps/{app}/actions/restore")
def restore(app: str, caller: PrincipalDep, plat: PlatformDep) -> Any:
    return app_json(deletions.restore(plat, caller.account, app), plat.settings)
