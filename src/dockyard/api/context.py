"""``RequestContext`` for the use cases: where a request came from and how its caller authenticated.

Routes take ``ContextDep`` and hand it to ``control``, which puts it into audit events. The request id
is the one ``HerokuHeadersMiddleware`` answers with; the auth method is what the authenticating
dependency left in ``request.state.auth_method``, else ``api_key`` when an ``Authorization`` header was
sent (Bearer, or HTTP Basic with the key as password), else ``none``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dockyard.domain.requests import RequestContext

MAX_USER_AGENT = 512


def request_context(request: Request) -> RequestContext:
    auth_method = getattr(request.state, "auth_method", None)
    if not isinstance(auth_method, str):
        auth_method = "api_key" if request.headers.get("authorization") else "none"
    request_id = getattr(request.state, "request_id", None)
    if not isinstance(request_id, str):
        request_id = ""
    return RequestContext(
        address=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", "")[:MAX_USER_AGENT],
        request_id=request_id,
        auth_method=auth_method,
    )


ContextDep = Annotated[RequestContext, Depends(request_context)]
