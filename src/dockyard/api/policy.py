"""The security policy of every API request, in one place: who is calling (``principal``), what their
token's scopes allow, MFA enrolment after the grace period, and step-up and typed confirmations for the
sensitive routes in ``SENSITIVE_ROUTES``.

``enforce`` runs before every route (an app-wide dependency). Routes whose sensitivity depends on more
than the route (creating a token, second factors, transfers) call ``control.stepup.require`` themselves.
``PolicyError`` answers 403 with its own id (``two_factor``, ``confirmation_required``, ...) and, when it is
about an app, ``{"app": {"name": ...}}`` so the Heroku CLI pre-authorizes that app and retries.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dockyard.api.deps import bearer_token, platform
from dockyard.auth import oauth as oauth_rules
from dockyard.auth.stepup import PolicyError, Principal, SensitiveAction
from dockyard.control import mfa, oauth, stepup
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import AccessDeniedError, DockyardError, NotFoundError, UnauthorizedError

TWO_FACTOR_HEADER = "heroku-two-factor-code"
HEROKU_CLI_AGENT = "heroku-cli/"
TOKEN_PREFIXES = ("dky_", "dkya_", "dkyr_", "dys_")


@dataclass(frozen=True)
class Rule:
    action: SensitiveAction
    scope: Literal["account", "app"]
    only_scaling_to_zero: bool = False


SENSITIVE_ROUTES: dict[tuple[str, str], Rule] = {
    ("POST", "/account/keys"): Rule("ssh-key.add", "account"),
    ("DELETE", "/account/keys/{key}"): Rule("ssh-key.remove", "account"),
    ("POST", "/oauth/authorizations/{authorization}/actions/regenerate-tokens"): Rule(
        "token.create", "account"
    ),
    ("POST", "/apps/{app}/collaborators"): Rule("collaborator.change", "app"),
    ("DELETE", "/apps/{app}/collaborators/{collaborator}"): Rule("collaborator.change", "app"),
    ("POST", "/apps/{app}/domains"): Rule("domain.change", "app"),
    ("DELETE", "/apps/{app}/domains/{domain}"): Rule("domain.change", "app"),
    ("DELETE", "/apps/{app}"): Rule("app.delete", "app"),
    ("PATCH", "/apps/{app}/formation"): Rule("formation.scale-to-zero", "app", True),
    ("PATCH", "/apps/{app}/formation/{ptype}"): Rule("formation.scale-to-zero", "app", True),
}
"""Route templates whose every call is a sensitive action (the rest check inside their route)."""

ENROLMENT_ROUTES = (
    "/account",
    "/users/~",
    "/account/two-factor",
    "/account/recovery-codes",
    "/account/webauthn",
    "/account/sudo",
    "/oauth/sessions",
    "/logout",
)
"""What an account past its MFA grace period may still call: enough to enrol a second factor."""

UNCHECKED_PREFIXES = ("/internal", "/healthz", "/oauth/tokens", "/login", "/signup", "/password")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def request_context(request: Request) -> RequestContext:
    return RequestContext(
        address=client_address(request),
        user_agent=request.headers.get("user-agent", "")[:300],
        request_id=request.headers.get("x-request-id", ""),
        auth_method="api_key",
    )


def principal(request: Request) -> Principal:
    """The authenticated caller (a route dependency); ``UnauthorizedError`` without valid credentials."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is None:
        found = oauth.principal_for_token(
            platform(request), bearer_token(request), address=client_address(request)
        )
    if found is None:
        raise UnauthorizedError("Invalid credentials provided.")
    request.state.principal = found
    return found


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """Email and password of an HTTP Basic header, unless the password is a Dockyard token."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user or password.startswith(TOKEN_PREFIXES):
        return None
    return user, password


def is_password_login(request: Request) -> bool:
    return basic_credentials(request) is not None


def two_factor_code(request: Request) -> str | None:
    code = request.headers.get(TWO_FACTOR_HEADER)
    return code.strip() if code and code.strip() else None


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None  # the route answers the malformed body itself


def _scales_to_zero(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    updates = body.get("updates")
    entries = updates if isinstance(updates, list) else [body]
    return any(isinstance(e, dict) and e.get("quantity") in (0, "0") for e in entries)


def _confirmation(request: Request, body: Any) -> str | None:
    confirm = request.query_params.get("confirm")
    if confirm is None and isinstance(body, dict) and isinstance(body.get("confirm"), str):
        confirm = body["confirm"]
    if confirm is None and request.headers.get("user-agent", "").startswith(HEROKU_CLI_AGENT):
        # The official Heroku CLI makes the user type the app name (or pass --confirm) before it sends
        # DELETE /apps/{app}, and does not forward it: its own confirmation stands in (docs/security.md).
        confirm = request.path_params.get("app")
    return confirm


async def enforce(request: Request) -> None:
    """The app-wide dependency: scopes, MFA enrolment, step-up and confirmations."""
    path = _route_path(request)
    if path.startswith(UNCHECKED_PREFIXES) or "authorization" not in request.headers:
        return
    if path == "/oauth/authorizations" and request.method == "POST" and is_password_login(request):
        return  # signing in with email and password: the route checks it
    rule = SENSITIVE_ROUTES.get((request.method, path))
    body = await _json_body(request) if rule is not None else None
    await run_in_threadpool(_enforce, request, path, rule, body)


def _enforce(request: Request, path: str, rule: Rule | None, body: Any) -> None:
    plat = platform(request)
    try:
        caller = principal(request)
    except UnauthorizedError:
        return  # the route's own authentication answers 401
    if not oauth_rules.scope_allows(caller.credential.scopes, request.method, path):
        raise AccessDeniedError(
            "This token's scopes (" + ", ".join(sorted(caller.credential.scopes)) + ") do not "
            f"allow {request.method} {path}; create an authorization with a wider scope."
        )
    now = plat.clock.now()
    with plat.store.read() as tx:
        enrol = mfa.enrolment_required(tx, caller.account, now, mfa.grace_period(plat))
    if enrol and not any(path == p or path.startswith(p + "/") for p in ENROLMENT_ROUTES):
        raise PolicyError(
            "Two-factor authentication is required for this account (its grace period ended): "
            "enable it with dockyard auth:2fa:enable (an authenticator app) or a security key "
            "in the dashboard; until then only enrolment is allowed.",
            error_id="mfa_enrollment_required",
        )
    if rule is None or (rule.only_scaling_to_zero and not _scales_to_zero(body)):
        return
    app_name, high_profile = None, False
    if rule.scope == "app":
        app_name, high_profile = _app_facts(plat, request.path_params.get("app", ""))
        if app_name is None:
            return  # the route answers not_found
    stepup.require(
        plat,
        caller,
        rule.action,
        code=two_factor_code(request),
        app_name=app_name,
        confirm=_confirmation(request, body) if rule.action == "app.delete" else None,
        high_profile=high_profile,
    )


def _app_facts(plat: Platform, ref: str) -> tuple[str | None, bool]:
    with plat.store.read() as tx:
        try:
            app = tx.get_app(ref)
        except NotFoundError:
            return None, False
        return app.name, tx.app_is_high_profile(app.id)


def policy_error_body(exc: PolicyError) -> dict[str, Any]:
    body: dict[str, Any] = {"id": exc.error_id, "message": exc.message}
    if exc.app is not None:
        body["app"] = {"name": exc.app}
    return body


async def handle_policy_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, PolicyError):
        if isinstance(exc, DockyardError):
            from dockyard.api.errors import handle_dockyard_error

            return await handle_dockyard_error(request, exc)
        raise exc
    return JSONResponse(policy_error_body(exc), status_code=403)
