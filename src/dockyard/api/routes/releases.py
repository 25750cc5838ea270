"""``/apps/{app}/releases``: list, info, create from a slug, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, ReleaseCreate, release_json
from dockyard.control import apps, releases
from dockyard.control.context import Platform
from dockyard.errors import InvalidError
from dockyard.store.records import Account

router = APIRouter(tags=["releases"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


def _current_version(items: list[Any]) -> int | None:
    succeeded = [r.version for r in items if r.status == "succeeded"]
    return max(succeeded) if succeeded else None


@router.get("/apps/{app}/releases")
def list_releases(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record = apps.get_app(plat, account, app)
    all_releases = releases.list_releases(plat, account, record.id)
    current = _current_version(all_releases)
    items = [release_json(record, r, current_version=current) for r in all_releases]
    return list_response(range_, items, ("version", "id"))


@router.get("/apps/{app}/releases/{release}")
def release_info(app: str, release: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record = apps.get_app(plat, account, app)
    found = releases.get_release(plat, account, record.id, release.removeprefix("v"))
    current = _current_version(releases.list_releases(plat, account, record.id))
    return release_json(record, found, current_version=current)


@router.post("/apps/{app}/releases", status_code=201)
def create_release(
    app: str, body: ReleaseCreate, account: AccountDep, plat: PlatformDep
) -> JSONResponse:
    if body.release is not None:
        created = releases.rollback(plat, account, app, str(body.release).removeprefix("v"))
    elif body.slug is not None:
        created = releases.release_slug(plat, account, app, body.slug, body.description)
    else:
        raise InvalidError(
            'Give "slug" to release a slug or "release" to roll back to a release', field="slug"
        )
    record = apps.get_app(plat, account, app)
    return JSONResponse(
        release_json(record, created, current_version=created.version), status_code=201
    )
