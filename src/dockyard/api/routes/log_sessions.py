"""``POST /apps/{app}/log-sessions`` → a one-time ``logplex_url``; ``GET /log-sessions/{id}`` streams it.

The stream is plain text, one line each, or Server-Sent Events (``data: <line>`` per line) for a
client that sends ``Accept: text/event-stream``: the Heroku CLI reads the ``logplex_url`` with an
EventSource.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from dockyard.api.deps import current_account, state
from dockyard.api.schemas import LogSessionCreate, timestamp
from dockyard.store.records import Account

router = APIRouter(tags=["log-sessions"])
AccountDep = Annotated[Account, Depends(current_account)]


class LogSessionSearch(LogSessionCreate):
    """Dockyard's additions: search the history (``since``, ``until``) and by text (``grep``)."""

    since: str | None = None
    until: str | None = None
    grep: str | None = None


@router.post("/apps/{app}/log-sessions", status_code=201)
def create_log_session(
    app: str, request: Request, account: AccountDep, body: LogSessionSearch | None = None
) -> JSONResponse:
    body = body or LogSessionSearch()
    api_state = state(request)
    dyno = body.dyno or body.dyno_name or body.type
    session_id = api_state.log_sessions.create(
        account,
        app,
        lines=body.lines,
        tail=body.tail,
        source=body.source,
        dyno=dyno,
        since=body.since,
        until=body.until,
        grep=body.grep,
    )
    now = timestamp(api_state.platform.clock.now())
    url = f"{api_state.platform.settings.api_url}/log-sessions/{session_id}"
    return JSONResponse(
        {"created_at": now, "id": session_id, "logplex_url": url, "updated_at": now},
        status_code=201,
    )


async def server_sent_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Each line as ``data: <line>``, one event per chunk of lines."""
    rest = b""
    async for chunk in chunks:
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            lines = data[: cut - 1].split(b"\n")
            yield b"".join(b"data: " + line.rstrip(b"\r") + b"\n" for line in lines) + b"\n"
    if rest:
        yield b"data: " + rest + b"\n\n"


@router.get("/log-sessions/{session_id}", include_in_schema=False)
def stream_log_session(session_id: str, request: Request) -> StreamingResponse:
    sessions = state(request).log_sessions
    query = sessions.take(session_id)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            server_sent_events(sessions.stream(query)),
            media_type="text/event-stream",
            headers=headers,
        )
    return StreamingResponse(
        sessions.stream(query), media_type="text/plain; charset=utf-8", headers=headers
    )
