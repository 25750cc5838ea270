"""``RequestContext``: where a request came from and how its caller authenticated.

The API builds one per request and hands it to the use cases in ``control``, which put it into audit
events (and throttles, notifications…). Code that acts on its own (the supervisor, recovery after a
restart, the operator's ``admin`` commands) passes ``SYSTEM`` or ``OPERATOR``.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTH_METHODS = (
    "api_key",  # an API key or OAuth bearer token in Authorization (Bearer or HTTP Basic password)
    "session",  # a dashboard session cookie
    "ssh_key",  # git over SSH with a registered key
    "password",  # a login with email and password (the auth events of the accounts issue)
    "internal",  # the data plane's internal token
    "operator",  # a command run on the host by the operator (``dockyard-serve admin …``)
    "system",  # Dockyard itself (recovery, schedules)
    "none",  # not authenticated (e.g. a failed login)
)
"""Values of ``RequestContext.auth_method`` used so far; others may be added (a plain string)."""


@dataclass(frozen=True)
class RequestContext:
    """The source of a request: kept in audit events together with the acting account."""

    address: str = ""
    """The client's IP address (the socket's peer unless a trusted proxy says otherwise)."""
    user_agent: str = ""
    request_id: str = ""
    """The ``Request-Id`` the API answered with (the client's ``X-Request-Id`` when it sent a valid one)."""
    auth_method: str = "none"
    """How the caller authenticated: one of ``AUTH_METHODS``."""


SYSTEM = RequestContext(auth_method="system")
"""Dockyard acting on its own."""

OPERATOR = RequestContext(address="local", auth_method="operator")
"""The operator running a command on the host."""
