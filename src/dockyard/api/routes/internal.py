"""``/internal/v1``: the data plane's view (desired dynos, routes) and its reports, and the pushes the
git ``pre-receive`` hook hands over. Not part of the public API; callers present the internal token.

The two views are long polls: with ``If-None-Match`` and ``?wait=<seconds>`` (at most ``MAX_WAIT``)
the answer comes as soon as it differs from that ETag, or as a 304 when ``wait`` has passed. Without
``wait`` they answer at once, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dockyard.api.deps import internal_caller, platform
from dockyard.build.output import BuildOutput
from dockyard.control import dataplane, deploys
from dockyard.control.context import Platform
from dockyard.domain.dataplane import DynoReport
from dockyard.errors import DockyardError, InvalidError

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/internal/v1", include_in_schema=False, dependencies=[Depends(internal_caller)]
)
PlatformDep = Annotated[Platform, Depends(platform)]
MAX_WAIT = 25.0
"""Longest a long poll is held, whatever the caller asks."""


def _encode(payload: dict[str, Any]) -> tuple[bytes, str]:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _answer(body: bytes, etag: str, given: str | None) -> Response:
    if given == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(
        body, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-store"}
    )


def _wait_of(request: Request) -> float:
    text = request.query_params.get("wait")
    if text is None:
        return 0.0
    try:
        wait = float(text)
    except ValueError:
        wait = math.nan
    if not wait >= 0:  # also NaN
        raise InvalidError(f"wait={text!r} is not a number of seconds", field="wait")
    return min(wait, MAX_WAIT)


async def _disconnected(request: Request) -> None:
    """Returns when the caller has gone away (it stopped, or gave up on the poll)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _long_poll(
    request: Request, plat: Platform, view: Callable[[], dict[str, Any]]
) -> Response:
    """``view()`` as JSON with its ETag; held while it equals ``If-None-Match`` and ``wait`` lasts."""
    given = request.headers.get("if-none-match")
    wait = _wait_of(request)
    changes = dataplane.changes(plat)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    gone: asyncio.Task[None] | None = None
    try:
        while True:
            generation = changes.generation
            body, etag = _encode(await run_in_threadpool(view))
            remaining = deadline - loop.time()
            if etag != given or remaining <= 0:
                return _answer(body, etag, given)
            if gone is None:
                gone = asyncio.ensure_future(_disconnected(request))
            changed = asyncio.ensure_future(changes.wait(generation, remaining))
            await asyncio.wait({changed, gone}, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await changed
            if gone.done():  # nobody to answer: do not read the state again
                return _answer(body, etag, given)
    finally:
        if gone is not None:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone


@router.get("/hosts/{host}/desired-dynos")
async def desired_dynos(host: str, request: Request, plat: PlatformDep) -> Response:
    def view() -> dict[str, Any]:
        return {"dynos": [d.to_json() for d in dataplane.desired_dynos(plat, host)]}

    return await _long_poll(request, plat, view)


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
async def routes(request: Request, plat: PlatformDep) -> Response:
    return await _long_poll(request, plat, lambda: dataplane.route_table(plat).to_json())


# -- pushes ------------------------------------------------------------------------------------------


class _Relay:
    """Build output from the worker thread to the streamed answer, one JSON object a line:
    ``{"line": "..."}`` for each line, then ``{"ok": true|false}``. Once the hook has gone away,
    writing a line raises ``BrokenPipeError`` in the build, as writing to its vanished pipe did
    when the hook built by itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.gone = False

    def _put(self, item: bytes | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError as exc:  # the API's loop has closed
            raise BrokenPipeError("the API is stopping") from exc

    def line(self, text: str) -> None:
        if self.gone:
            raise BrokenPipeError("the pusher has gone away")
        self._put(json.dumps({"line": text}).encode() + b"\n")

    def finish(self, ok: bool) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._put(json.dumps({"ok": ok}).encode() + b"\n")
            self._put(None)

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            self.gone = True


def _parse_push(plat: Platform, payload: dict[str, Any]) -> deploys.PushedRefs:
    try:
        refs = [(str(old), str(new), str(ref)) for old, new, ref in payload["refs"]]
        given = dict(payload.get("git_env") or {})
        git_env = {k: str(given[k]) for k in deploys.GIT_OBJECT_VARS if k in given}
        pushed = deploys.PushedRefs(
            app_id=str(payload["app_id"]),
            account_id=str(payload["account_id"]),
            refs=refs,
            repo=Path(str(payload["repo"])),
            git_env=git_env,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidError(f"malformed push: {exc!r}") from exc
    deploys.check_push(plat, pushed)
    return pushed


@router.post("/pushes")
async def push(plat: PlatformDep, payload: Annotated[dict[str, Any], Body()]) -> Response:
    """Build and release a push, for the ``pre-receive`` hook that received it (``git.hooks``).
    The build runs in a thread of this process with the same per-app lock as every build; its
    output is streamed back (see ``_Relay``) so the pusher sees it live."""
    pushed = _parse_push(plat, payload)
    relay = _Relay(asyncio.get_running_loop())

    def build() -> None:
        ok = False
        try:
            deploys.deploy_push(
                plat,
                pushed.app_id,
                pushed.account_id,
                pushed.refs,
                pushed.repo,
                BuildOutput(relay.line),
                git_env=pushed.git_env,
            )
            ok = True
        except Exception as exc:  # deploy_push has written the reason to the output
            if not isinstance(exc, DockyardError | OSError):  # OSError: the pusher went away
                log.exception("the build of a push to app %s failed", pushed.app_id)
        finally:
            relay.finish(ok)

    threading.Thread(target=build, name=f"push-{pushed.app_id}", daemon=True).start()
    return StreamingResponse(relay.stream(), media_type="application/x-ndjson")
