"""``/sources``: upload slots for source tarballs (``POST``), and their signed ``put_url`` and
``get_url`` (``PUT`` and ``GET /sources/{id}?signature=...``, no API key needed)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from dockyard.api.deps import current_account, platform
from dockyard.control import sources
from dockyard.control.context import Platform
from dockyard.store.records import Account

router = APIRouter(tags=["sources"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]
SignatureDep = Annotated[str | None, Query()]


@router.post("/sources", status_code=201)
def create_source(account: AccountDep, plat: PlatformDep) -> JSONResponse:
    source = sources.create_source(plat, account)
    get_url, put_url = sources.urls(plat, source)
    return JSONResponse({"source_blob": {"get_url": get_url, "put_url": put_url}}, status_code=201)


@router.put("/sources/{source_id}", include_in_schema=False)
async def upload_source(
    source_id: str, request: Request, plat: PlatformDep, signature: SignatureDep = None
) -> Response:
    upload = await asyncio.to_thread(sources.begin_upload, plat, source_id, signature)
    try:
        async for chunk in request.stream():
            upload.write(chunk)
    except BaseException:
        upload.abort()
        raise
    await asyncio.to_thread(upload.finish)
    return Response(status_code=200)


@router.get("/sources/{source_id}", include_in_schema=False)
def download_source(
    source_id: str, plat: PlatformDep, signature: SignatureDep = None
) -> FileResponse:
    path = sources.uploaded_file(plat, source_id, signature)
    return FileResponse(path, media_type="application/octet-stream")
