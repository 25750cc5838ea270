"""``/apps/{app}/builds``: list and info (builds start from ``git push``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header

from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, build_json
from dockyard.control import builds
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["builds"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/builds")
def list_builds(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, found = builds.list_builds(plat, account, app)
    return list_response(range_, [build_json(record, b) for b in found], ("id", "created_at"))


@router.get("/apps/{app}/builds/{build}")
def build_info(app: str, build: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, found = builds.get_build(plat, account, app, build)
    return build_json(record, found)
