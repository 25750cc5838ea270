"""``/apps/{app}/releases``: list, info, create from a slug, rollback; release-phase output.

A release whose slug declares a ``release`` command is answered ``pending``; the command runs in
the background and ``output_stream_url`` (signed, no API key needed) streams its output.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, ReleaseCreate, release_json
from dockyard.control import apps, releasephase, releases
from dockyard.control.context import Platform
from dockyard.errors import InvalidError
from dockyard.store.records import Account, App, Release

router = APIRouter(tags=["releases"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


def _current_version(items: list[Any]) -> int | None:
    succeeded = [r.version for r in items if r.status == "succeeded"]
    return max(succeeded) if succeeded else None


def _json(plat: Platform, app: App, release: Release, current: int | None) -> JSON:
    stream = None
    if releasephase.release_command(plat, release) is not None:
        stream = releasephase.output_stream_url(plat, release)
    return release_json(app, release, current_version=current, output_stream_url=stream)


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
    items = [_json(plat, record, r, current) for r in all_releases]
    return list_response(range_, items, ("version", "id"))


@router.get("/apps/{app}/releases/{release}")
def release_info(app: str, release: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record = apps.get_app(plat, account, app)
    found = releases.get_release(plat, account, record.id, release.removeprefix("v"))
    current = _current_version(releases.list_releases(plat, account, record.id))
    return _json(plat, record, found, current)


@router.post("/apps/{app}/releases", status_code=201)
def create_release(
    app: str, body: ReleaseCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    if body.release is not None:
        version = str(body.release).removeprefix("v")
        created = releases.rollback(plat, account, app, version, context=context)
    elif body.slug is not None:
        created = releases.release_slug(
            plat, account, app, body.slug, body.description, context=context
        )
    else:
        raise InvalidError(
            'Give "slug" to release a slug or "release" to roll back to a release', field="slug"
        )
    record = apps.get_app(plat, account, app)
    current = created.version if created.status == "succeeded" else None
    return JSONResponse(_json(plat, record, created, current), status_code=201)


@router.get("/release-output/{app_id}/{release_id}", include_in_schema=False)
def release_output(
    app_id: str,
    release_id: str,
    plat: PlatformDep,
    signature: Annotated[str | None, Query()] = None,
) -> StreamingResponse:
    stream = releasephase.follow_output(plat, app_id, release_id, signature)
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8")
