"""Git's smart HTTP protocol on the API host: ``/{app}.git/info/refs``, ``git-upload-pack`` (clone,
fetch) and ``git-receive-pack`` (push).

Authentication is HTTP Basic with the API key as the password (the user name is ignored), as with
Heroku and ``~/.netrc``. The real ``git upload-pack`` / ``git receive-pack`` run with
``--stateless-rpc``; their output is streamed to the client, so the build output of the
``pre-receive`` hook reaches the pusher live.

Limits: a push costs one token of a bucket per account and app (``git.push_rate_per_hour``, 75 as
on Heroku, refilled evenly); an empty bucket answers 429 with ``Retry-After`` and a message git
shows as ``remote:`` lines. A request body (the pack) over ``build.max_repo_bytes``, declared,
received or once gunzipped, is answered 413, and ``git receive-pack`` gets the same limit as
``receive.maxInputSize``. Whatever the URL, git only ever runs in the repository of the app the
account may use: the app is looked up by name or id and its repository path is built from its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from dockyard._util import proc
from dockyard.auth.credentials import api_key_from_authorization
from dockyard.auth.ratelimit import RateLimiter
from dockyard.control.access import app_for
from dockyard.control.accounts import authenticate
from dockyard.control.context import Platform
from dockyard.errors import (
    AccessDeniedError,
    DockyardError,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
)
from dockyard.git.hooks import hook_environment
from dockyard.git.repos import GitRepos
from dockyard.store.records import Account, App

Service = Literal["git-upload-pack", "git-receive-pack"]
SERVICES: dict[str, Literal["read", "deploy"]] = {
    "git-upload-pack": "read",
    "git-receive-pack": "deploy",
}
REALM = 'Basic realm="Dockyard"'
NO_CACHE = {
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
    "Expires": "Fri, 01 Jan 1980 00:00:00 GMT",
    "Pragma": "no-cache",
}
_CHUNK = 64 * 1024
_SPOOL_IN_MEMORY = 8 << 20


def pkt_line(text: str) -> bytes:
    data = text.encode("utf-8")
    return f"{len(data) + 4:04x}".encode() + data


@dataclass(frozen=True)
class _Push:
    account: Account
    app: App
    repo: Path


class GitHttp:
    def __init__(self, platform: Platform, *, limiter: RateLimiter | None = None) -> None:
        self.platform = platform
        self.repos = GitRepos(platform.settings.repos_dir)
        self.max_body = platform.settings.build.max_repo_bytes
        self.limiter = limiter or RateLimiter(
            platform.settings.git.push_rate_per_hour, platform.clock
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{app}.git/info/refs", self.info_refs, methods=["GET"]),
            Route("/{app}.git/git-upload-pack", self._rpc("git-upload-pack"), methods=["POST"]),
            Route("/{app}.git/git-receive-pack", self._rpc("git-receive-pack"), methods=["POST"]),
        ]

    # -- access ----------------------------------------------------------------------------------

    def _authorize_sync(self, token: str | None, app_ref: str, service: str) -> _Push:
        account = authenticate(self.platform, token)
        with self.platform.store.read() as tx:
            app = app_for(tx, account, app_ref, SERVICES[service])
        return _Push(account, app, self.repos.ensure(app.id))

    async def _authorize(self, request: Request, service: str) -> _Push | Response:
        token = api_key_from_authorization(request.headers.get("authorization"))
        try:
            return await run_in_threadpool(
                self._authorize_sync, token, request.path_params["app"], service
            )
        except UnauthorizedError as exc:
            return PlainTextResponse(
                exc.message + "\n", status_code=401, headers={"WWW-Authenticate": REALM}
            )
        except NotFoundError:
            return PlainTextResponse("Couldn't find that app.\n", status_code=404)
        except AccessDeniedError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=403)

    def _env(self, push: _Push) -> dict[str, str]:
        return hook_environment(self.platform.settings, push.app.id, push.account.id)

    # -- the push rate limit (one token per git-receive-pack POST) --------------------------------

    @staticmethod
    def _bucket(push: _Push) -> str:
        return f"{push.account.id}:{push.app.id}"

    def _rate_limited(self, push: _Push, *, take: bool) -> Response | None:
        """429 when the account has no push left for the app this hour; ``take`` spends one.

        ``info/refs`` only looks, so that git shows the message before it sends a pack; the
        ``git-receive-pack`` POST spends, so a client that skips ``info/refs`` is limited too."""
        key = self._bucket(push)
        allowed = self.limiter.take(key)[0] if take else self.limiter.remaining(key) >= 1
        if allowed:
            return None
        retry = self.limiter.retry_after(key)
        message = (
            f"Too many pushes to {push.app.name}: the limit is {self.limiter.capacity} an hour per app "
            f"and account. Try again in {retry} s.\n"
        )
        return PlainTextResponse(message, status_code=429, headers={"Retry-After": str(retry)})

    # -- endpoints -------------------------------------------------------------------------------

    async def info_refs(self, request: Request) -> Response:
        service = request.query_params.get("service", "")
        if service not in SERVICES:
            return PlainTextResponse(
                "Dumb HTTP git is not supported: use git 1.6.6 or newer.\n", status_code=403
            )
        push = await self._authorize(request, service)
        if isinstance(push, Response):
            return push
        if service == "git-receive-pack":
            limited = self._rate_limited(push, take=False)
            if limited is not None:
                return limited
        argv: list[str | Path] = [
            "git",
            service.removeprefix("git-"),
            "--stateless-rpc",
            "--advertise-refs",
            push.repo,
        ]
        try:
            process = await proc.start(argv, env=self._env(push))
            stdout, stderr = await process.communicate()
        except DockyardError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=500)
        if process.returncode != 0:
            detail = stderr.decode("utf-8", "replace").strip()
            return PlainTextResponse(f"git {service} failed: {detail}\n", status_code=500)
        body = pkt_line(f"# service={service}\n") + b"0000" + stdout
        return Response(body, media_type=f"application/x-{service}-advertisement", headers=NO_CACHE)

    def _rpc(self, service: Service) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.rpc(request, service)

        return endpoint

    async def rpc(self, request: Request, service: Service) -> Response:
        if request.headers.get("content-type") != f"application/x-{service}-request":
            return PlainTextResponse(f"Expected a {service} request.\n", status_code=415)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return self._too_large()
        push = await self._authorize(request, service)
        if isinstance(push, Response):
            return push
        if service == "git-receive-pack":
            limited = self._rate_limited(push, take=True)
            if limited is not None:
                return limited
        try:
            body = await self._spool(request)
        except InvalidError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=400)
        if body is None:
            return self._too_large()
        argv: list[str | Path] = ["git"]
        if service == "git-receive-pack":  # the pack git accepts is bounded like the body
            argv += ["-c", f"receive.maxInputSize={self.max_body}"]
        argv += [service.removeprefix("git-"), "--stateless-rpc", push.repo]
        try:
            process = await proc.start(argv, env=self._env(push))
        except DockyardError as exc:
            body.close()
            return PlainTextResponse(exc.message + "\n", status_code=500)
        return StreamingResponse(
            _relay(process, body), media_type=f"application/x-{service}-result", headers=NO_CACHE
        )

    def _too_large(self) -> Response:
        return PlainTextResponse(
            f"The push is larger than the limit of {self.max_body} bytes.\n", status_code=413
        )

    async def _spool(self, request: Request) -> IO[bytes] | None:
        """The request body, gunzipped when git compressed it, in a temporary file; None when it is
        larger than the limit (compressed or not)."""
        gzipped = request.headers.get("content-encoding", "").lower() in ("gzip", "x-gzip")
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        received = written = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > self.max_body:
                    spool.close()
                    return None
                data = chunk
                if inflate is not None:
                    data = inflate.decompress(chunk, self.max_body - written + 1)
                    if inflate.unconsumed_tail:
                        spool.close()
                        return None
                written += len(data)
                if written > self.max_body:
                    spool.close()
                    return None
                spool.write(data)
            if inflate is not None:
                tail = inflate.flush()
                if written + len(tail) > self.max_body:
                    spool.close()
                    return None
                spool.write(tail)
        except zlib.error as exc:
            spool.close()
            raise InvalidError(f"The request body is not valid gzip: {exc}") from exc
        spool.seek(0)
        return spool


async def _feed(process: asyncio.subprocess.Process, body: IO[bytes]) -> None:
    if process.stdin is None:
        raise RuntimeError("git was started without a pipe for its input")
    try:
        while chunk := body.read(_CHUNK):
            process.stdin.write(chunk)
            await process.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # git stopped reading; its exit status and output tell the client why
    finally:
        body.close()
        process.stdin.close()


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    if stream is None:
        return b""
    return await stream.read()


async def _relay(process: asyncio.subprocess.Process, body: IO[bytes]) -> AsyncIterator[bytes]:
    """Feed the request body to git while passing its output on as it comes."""
    if process.stdout is None:
        raise RuntimeError("git was started without a pipe for its output")
    feeder = asyncio.create_task(_feed(process, body))
    errors = asyncio.create_task(_drain(process.stderr))
    try:
        while chunk := await process.stdout.read(_CHUNK):
            yield chunk
        await feeder
        await errors
        await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        feeder.cancel()
        errors.cancel()


def git_routes(platform: Platform) -> list[BaseRoute]:
    """The smart-HTTP git routes, to mount at the root of the API's ASGI app."""
    return GitHttp(platform).routes()
