"""Step-up for sensitive actions: checking it, and granting it to the calling credential.

``require`` raises ``PolicyError`` (``two_factor`` with a second factor, else ``reauthentication_required``)
unless the credential is in sudo mode or the request carries a valid second factor
(``Heroku-Two-Factor-Code``), which then starts a new 15-minute window for that credential. Apps flagged
high-profile accept only WebAuthn for step-up (through ``/account/sudo``), never a code in a header.
"""

from __future__ import annotations

from datetime import datetime

from dockyard.auth.stepup import (
    STEP_UP_WINDOW,
    PolicyError,
    Principal,
    SensitiveAction,
    check_confirmation,
    needs_step_up,
    step_up_error,
)
from dockyard.control import mfa
from dockyard.control.context import Platform

__all__ = ["STEP_UP_WINDOW", "mark_authenticated", "require"]


def mark_authenticated(platform: Platform, principal: Principal, at: datetime) -> None:
    """Start a new sudo window on the credential (``authenticated_at`` = ``at``). Dashboard sessions are
    rotated by ``control.sessions`` when they step up; a code sent with one request serves that request."""
    credential = principal.credential
    with platform.store.transaction() as tx:
        if credential.kind == "api-key":
            tx.set_api_key_authenticated(credential.id, at)
        elif credential.kind in ("login", "authorization"):
            tx.set_authorization_authenticated(credential.id, at)


def require(
    platform: Platform,
    principal: Principal,
    action: SensitiveAction,
    *,
    code: str | None = None,
    app_name: str | None = None,
    confirm: str | None = None,
    high_profile: bool = False,
) -> None:
    """Allow ``action`` or raise ``PolicyError``. ``confirm`` is checked first for deletion and transfer;
    then step-up, satisfied by sudo mode or by ``code`` (TOTP or recovery code; not for high-profile
    apps, which need a WebAuthn re-authentication through ``/account/sudo``)."""
    if app_name is not None:
        check_confirmation(action, app_name, confirm)
    now = platform.clock.now()
    if not needs_step_up(principal.credential, action, now):
        return
    if high_profile:
        raise PolicyError(
            f"{app_name} is a high-profile app: re-authenticate with your security key or passkey "
            "(POST /account/sudo with a WebAuthn assertion, e.g. from the dashboard) first.",
            error_id="webauthn_required",
            app=app_name,
        )
    with platform.store.read() as tx:
        has_factor = mfa.account_has_second_factor(tx, principal.account.id)
    if code and has_factor:
        mfa.verify_code(platform, principal.account, code)
        mark_authenticated(platform, principal, now)
        return
    raise step_up_error(action, has_second_factor=has_factor, app=app_name)
