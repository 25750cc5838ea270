"""ASGI middleware: ``ETag`` / ``If-None-Match``, ``RateLimit-Remaining``, ``Request-Id``.

The request id is also set in ``dockyard.logs.platformlog.request_id_var`` while the request is
handled, so the platform log's events about it carry the id the client sees in ``Request-Id``."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.logs.platformlog import request_id_var

_REQUEST_ID = re.compile(r"^[A-Za-z0-9+/=-]{20,200}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


class HerokuHeadersMiddleware:
    """Adds ``Request-Id`` and ``RateLimit-Remaining`` to every response; answers a GET whose JSON body's
    ETag matches ``If-None-Match`` with 304 and no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id  # for audit events (api.context)
        is_get = scope["method"] in ("GET", "HEAD")
        if_none_match = _header(scope, b"if-none-match") if is_get else None
        start: dict[str, Any] = {}
        body_parts: list[bytes] = []
        buffering = False

        def extra_headers() -> list[tuple[bytes, bytes]]:
            headers = [(b"request-id", request_id.encode())]
            remaining = scope.get("state", {}).get("rate_limit_remaining")
            if remaining is not None:
                headers.append((b"ratelimit-remaining", str(remaining).encode()))
            return headers

        async def send_wrapper(message: Message) -> None:
            nonlocal buffering
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", ())).get(b"content-type", b"")
                buffering = (
                    is_get
                    and message["status"] in (200, 206)
                    and content_type.startswith(b"application/json")
                )
                message = dict(message)
                message["headers"] = list(message.get("headers", ())) + extra_headers()
                if not buffering:
                    await send(message)
                    return
                start.update(message)
                return
            if message["type"] == "http.response.body" and buffering:
                body_parts.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(body_parts)
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                headers = [(k, v) for k, v in start["headers"] if k != b"etag"]
                headers.append((b"etag", etag.encode()))
                if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
                    headers = [
                        (k, v) for k, v in headers if k not in (b"content-length", b"content-type")
                    ]
                    await send({"type": "http.response.start", "status": 304, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
                await send(
                    {"type": "http.response.start", "status": start["status"], "headers": headers}
                )
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_id_var.reset(token)
