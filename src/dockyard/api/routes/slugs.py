"""``/apps/{app}/slugs``: slug info with a ``blob`` URL serving Heroku's tar.gz slug format, and
slug uploads (``POST`` the metadata, then ``PUT`` the tarball to the ``blob.url`` it answers)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from dockyard.api.deps import current_account, platform
from dockyard.api.schemas import JSON, SlugCreate, slug_json, slug_upload_json
from dockyard.control import slugs
from dockyard.control.context import Platform
from dockyard.store.records import Account, App, Slug

router = APIRouter(tags=["slugs"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]
SignatureDep = Annotated[str | None, Query()]


def _json(plat: Platform, app: App, found: Slug | slugs.SlugUpload) -> JSON:
    if isinstance(found, slugs.SlugUpload):
        return slug_upload_json(app, found, put_url=slugs.upload_url(plat, found))
    return slug_json(app, found, blob_url=slugs.blob_url(plat, found))


@router.get("/apps/{app}/slugs/{slug}")
def slug_info(app: str, slug: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, found = slugs.get_slug(plat, account, app, slug)
    return _json(plat, record, found)


@router.post("/apps/{app}/slugs", status_code=201)
def create_slug(app: str, body: SlugCreate, account: AccountDep, plat: PlatformDep) -> JSONResponse:
    record, upload = slugs.create_upload(
        plat,
        account,
        app,
        process_types=body.process_types,
        commit=body.commit,
        checksum=body.checksum,
        stack=body.stack,
    )
    return JSONResponse(_json(plat, record, upload), status_code=201)


@router.put("/slug-uploads/{upload_id}", include_in_schema=False)
async def upload_slug(
    upload_id: str, request: Request, plat: PlatformDep, signature: SignatureDep = None
) -> JSONResponse:
    receiver = await asyncio.to_thread(slugs.begin_slug_upload, plat, upload_id, signature)
    try:
        async for chunk in request.stream():
            receiver.write(chunk)
    except BaseException:
        receiver.abort()
        raise
    slug = await asyncio.to_thread(receiver.finish)
    return JSONResponse({"id": slug.id, "size": slug.size, "checksum": f"SHA256:{slug.digest}"})


@router.get("/slug-blobs/{app_id}/{slug_id}", include_in_schema=False)
def slug_blob(
    app_id: str, slug_id: str, plat: PlatformDep, signature: SignatureDep = None
) -> FileResponse:
    path = slugs.blob(plat, app_id, slug_id, signature)
    return FileResponse(path, media_type="application/gzip", filename=f"{slug_id}.tgz")
