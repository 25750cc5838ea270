"""``/apps/{app}/dynos``: list, info, run a one-off dyno, stop, restart all / one;
``/apps/{app}/formations/{type}``: restart a type."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse

from dockyard.api.deps import current_account, platform
from dockyard.api.pagination import list_response
from dockyard.api.schemas import JSON, dyno_json
from dockyard.control import formation, oneoff
from dockyard.control.context import Platform
from dockyard.store.records import Account, Dyno

router = APIRouter(tags=["dynos"])
AccountDep = Annotated[Account, Depends(current_account)]
PlatformDep = Annotated[Platform, Depends(platform)]


@router.get("/apps/{app}/dynos")
def list_dynos(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Any:
    record, dynos = formation.list_dynos(plat, account, app)
    return list_response(range_, [dyno_json(record, d) for d in dynos], ("id", "name"))


@router.get("/apps/{app}/dynos/{dyno}")
def dyno_info(app: str, dyno: str, account: AccountDep, plat: PlatformDep) -> JSON:
    record, found = formation.get_dyno(plat, account, app, dyno)
    return dyno_json(record, found)


@router.post("/apps/{app}/dynos", status_code=201)
def run_dyno(
    app: str,
    account: AccountDep,
    plat: PlatformDep,
    body: Annotated[dict[str, Any], Body()],
) -> JSONResponse:
    """A one-off dyno (``heroku run``); an attached one answers with its ``attach_url``."""
    started = oneoff.run(plat, account, app, oneoff.RunRequest.from_json(body))
    dyno = started.dyno
    record = Dyno(
        id=dyno.id,
        app_id=dyno.app_id,
        name=dyno.name,
        type=dyno.type,
        release_version=dyno.release_version,
        state="starting",
        command=dyno.command,
        size=dyno.size,
        address=None,
        host="",
        started_at=dyno.created_at,
        updated_at=dyno.created_at,
    )
    payload = dyno_json(started.app, record)
    payload["attach_url"] = started.attach_url
    return JSONResponse(payload, status_code=201)


@router.post("/apps/{app}/dynos/{dyno}/actions/stop", status_code=202)
def stop_dyno(app: str, dyno: str, account: AccountDep, plat: PlatformDep) -> JSONResponse:
    oneoff.stop(plat, account, app, dyno)
    return JSONResponse({}, status_code=202)


@router.delete("/apps/{app}/dynos", status_code=202)
def restart_all(app: str, account: AccountDep, plat: PlatformDep) -> JSONResponse:
    formation.restart(plat, account, app)
    return JSONResponse({}, status_code=202)


@router.delete("/apps/{app}/dynos/{dyno}", status_code=202)
def restart_dyno(app: str, dyno: str, account: AccountDep, plat: PlatformDep) -> JSONResponse:
    formation.restart(plat, account, app, dyno)
    return JSONResponse({}, status_code=202)


@router.delete("/apps/{app}/formations/{ptype}", status_code=202)
def restart_type(app: str, ptype: str, account: AccountDep, plat: PlatformDep) -> JSONResponse:
    formation.restart(plat, account, app, ptype)
    return JSONResponse({}, status_code=202)
