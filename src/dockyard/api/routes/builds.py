"""``/apps/{app}/builds``: list, info and create (the Build API); the build cache; build output.

A created build answers ``201`` at once with status ``pending``; it runs in the background and its
``output_stream_url`` (signed, no API key needed) streams the output while it runs and serves the
whole output afterwards.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse

from dockyard.api.context import ContextDep
from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, BuildCreate, build_json
from dockyard.control import builds
from dockyard.control.context import Platform
from dockyard.store.records import Account, App, Build

router = APIRouter(tags=["builds"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


def _json(plat: Platform, app: App, build: Build) -> JSON:
    return build_json(app, build, output_stream_url=builds.output_stream_url(plat, build))


@router.get("/apps/{app}/builds")
def list_builds(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, found = builds.list_builds(plat, account, app)
    return list_response(range_, [_json(plat, record, b) for b in found], ("id", "created_at"))


@router.get("/apps/{app}/builds/{build}")
def build_info(app: str, build: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, found = builds.get_build(plat, account, app, build)
    return _json(plat, record, found)


@router.post("/apps/{app}/builds", status_code=201)
def create_build(
    app: str, body: BuildCreate, account: AccountDep, plat: PlatformDep, context: ContextDep
) -> JSONResponse:
    record, created = builds.create_build(
        plat,
        account,
        app,
        url=body.source_blob.url,
        checksum=body.source_blob.checksum,
        version=body.source_blob.version,
        buildpacks=None if body.buildpacks is None else [b.url for b in body.buildpacks],
        context=context,
    )
    return JSONResponse(_json(plat, record, created), status_code=201)


@router.delete("/apps/{app}/build-cache", status_code=202)
def purge_build_cache(app: str, account: AccountDep, plat: PlatformDep) -> JSONResponse:
    builds.purge_cache(plat, account, app)
    return JSONResponse({}, status_code=202)


@router.get("/build-output/{app_id}/{build_id}", include_in_schema=False)
def build_output(
    app_id: str,
    build_id: str,
    plat: PlatformDep,
    signature: Annotated[str | None, Query()] = None,
) -> StreamingResponse:
    stream = builds.follow_output(plat, app_id, build_id, signature)
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8")
