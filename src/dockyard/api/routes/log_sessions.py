"""``POST /apps/{app}/log-sessions`` → a one-time ``logplex_url``; ``GET /log-sessions/{id}`` streams it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from dockyard.api.deps import current_account, state
from dockyard.api.schemas import LogSessionCreate, timestamp
from dockyard.store.records import Account

router = APIRouter(tags=["log-sessions"])
AccountDep = Annotated[Account, Depends(current_account)]


@router.post("/apps/{app}/log-sessions", status_code=201)
def create_log_session(
    app: str, request: Request, account: AccountDep, body: LogSessionCreate | None = None
) -> JSONResponse:
    body = body or LogSessionCreate()
    api_state = state(request)
    dyno = body.dyno or body.dyno_name or body.type
    session_id = api_state.log_sessions.create(
        account, app, lines=body.lines, tail=body.tail, source=body.source, dyno=dyno
    )
    now = timestamp(api_state.platform.clock.now())
    url = f"{api_state.platform.settings.api_url}/log-sessions/{session_id}"
    return JSONResponse(
        {"created_at": now, "id": session_id, "logplex_url": url, "updated_at": now},
        status_code=201,
    )


@router.get("/log-sessions/{session_id}", include_in_schema=False)
def stream_log_session(session_id: str, request: Request) -> StreamingResponse:
    sessions = state(request).log_sessions
    query = sessions.take(session_id)
    return StreamingResponse(sessions.stream(query), media_type="text/plain; charset=utf-8")
