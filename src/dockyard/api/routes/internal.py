"""``/internal/v1``: the data plane's view (desired dynos, routes) and its reports. Not part of the public
API; callers present the internal token."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from dockyard.api.deps import internal_caller, platform
from dockyard.control import dataplane
from dockyard.control.context import Platform
from dockyard.domain.dataplane import DynoReport
from dockyard.errors import InvalidError

router = APIRouter(
    prefix="/internal/v1", include_in_schema=False, dependencies=[Depends(internal_caller)]
)
PlatformDep = Annotated[Platform, Depends(platform)]


def _versioned(request: Request, payload: dict[str, Any]) -> Response:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(
        body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-store"}
    )


@router.get("/hosts/{host}/desired-dynos")
def desired_dynos(host: str, request: Request, plat: PlatformDep) -> Response:
    dynos = dataplane.desired_dynos(plat, host)
    return _versioned(request, {"dynos": [d.to_json() for d in dynos]})


@router.put("/hosts/{host}/dynos")
def report_dynos(
    host: str, plat: PlatformDep, payload: Annotated[dict[str, Any], Body()]
) -> JSONResponse:
    try:
        reports = [DynoReport.from_json(d) for d in payload.get("dynos", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidError(f"malformed dyno report: {exc}") from exc
    dataplane.record_dynos(plat, host, reports)
    return JSONResponse({"accepted": len(reports)})


@router.get("/routes")
def routes(request: Request, plat: PlatformDep) -> Response:
    return _versioned(request, dataplane.route_table(plat).to_json())
