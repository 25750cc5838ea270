"""Second factors of an account: TOTP, WebAuthn security keys and passkeys, recovery codes; checking a
second factor at sign-in and step-up; MFA being mandatory after the grace period.

Enrolling or removing a factor is a sensitive action (step-up, ``mfa.change``) that the API checks before
calling in here; each change is notified to every address of the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from dockyard.auth import mfa, recovery, webauthn
from dockyard.auth.stepup import PolicyError
from dockyard.control.context import Platform
from dockyard.domain.requests import RequestContext
from dockyard.errors import ConflictError, InvalidError, NotFoundError, UnauthorizedError
from dockyard.store import Tx
from dockyard.store.records import Account
from dockyard.store.security import WebAuthnCredential

MFA_GRACE_PERIOD = timedelta(days=14)
"""The default of ``auth.mfa_grace_days``: accounts without a second factor may work this long after
creation; then only enrolment is allowed."""
CHALLENGE_LIFETIME = timedelta(minutes=5)
SecondFactorMethod = Literal["totp", "recovery-code", "webauthn"]


def account_has_second_factor(tx: Tx | Platform, account_id: str) -> bool:
    """A confirmed TOTP authenticator or at least one WebAuthn credential (in ``tx``, or in a unit of work
    of its own when given the platform)."""
    if isinstance(tx, Platform):
        with tx.store.read() as inner:
            return account_has_second_factor(inner, account_id)
    totp = tx.get_totp(account_id)
    if totp is not None and totp.confirmed_at is not None:
        return True
    return bool(tx.list_webauthn_credentials(account_id))


def account_has_webauthn(tx: Tx, account_id: str) -> bool:
    return bool(tx.list_webauthn_credentials(account_id))


def mfa_deadline(tx: Tx, account: Account, grace: timedelta = MFA_GRACE_PERIOD) -> datetime:
    """When the grace period without a second factor ends."""
    start = tx.account_security(account.id).mfa_grace_from or account.created_at
    return start + grace


def grace_period(platform: Platform) -> timedelta:
    return timedelta(days=platform.settings.auth.mfa_grace_days)


def enrolment_required(
    tx: Tx, account: Account, now: datetime, grace: timedelta = MFA_GRACE_PERIOD
) -> bool:
    """Past the grace period and still without a second factor; operators need WebAuthn at once."""
    if tx.account_security(account.id).role == "admin":
        return not account_has_webauthn(tx, account.id)
    return now >= mfa_deadline(tx, account, grace) and not account_has_second_factor(tx, account.id)


@dataclass(frozen=True)
class MfaStatus:
    totp: bool
    webauthn: list[WebAuthnCredential]
    recovery_codes_left: int
    required_from: datetime

    @property
    def enabled(self) -> bool:
        return self.totp or bool(self.webauthn)


def status(platform: Platform, account: Account) -> MfaStatus:
    with platform.store.read() as tx:
        totp = tx.get_totp(account.id)
        return MfaStatus(
            totp=totp is not None and totp.confirmed_at is not None,
            webauthn=tx.list_webauthn_credentials(account.id),
            recovery_codes_left=len(tx.unused_recovery_codes(account.id)),
            required_from=mfa_deadline(tx, account, grace_period(platform)),
        )


def _notify(
    platform: Platform,
    account: Account,
    event: str,
    details: dict[str, str],
    item: tuple[str, str] | None = None,
) -> None:
    from dockyard.control import notifications

    notifications.notify(platform, account, event, details, item=item)


# -- TOTP -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str


def begin_totp(platform: Platform, account: Account) -> TotpEnrolment:
    """A new secret, pending until a code from it is confirmed (an enabled authenticator stays as it is
    until then)."""
    secret = mfa.new_totp_secret()
    with platform.store.transaction() as tx:
        current = tx.get_totp(account.id)
        if current is not None and current.confirmed_at is not None:
            raise ConflictError(
                "Two-factor authentication with an authenticator app is on already; disable it "
                "first to enrol another app"
            )
        tx.put_pending_totp(account.id, secret)
    return TotpEnrolment(secret, mfa.provisioning_uri(secret, account.email))


def confirm_totp(platform: Platform, account: Account, code: str) -> list[str]:
    """Turn the pending authenticator on with a code from it. The first second factor of an account comes
    with ten recovery codes (returned, shown once)."""
    now = platform.clock.now()
    codes: list[str] = []
    with platform.store.transaction() as tx:
        pending = tx.get_totp(account.id)
        if pending is None or pending.confirmed_at is not None:
            raise NotFoundError("No authenticator app is waiting for confirmation; start again")
        match = mfa.verify_totp(pending.secret, code, now, last_step=pending.last_step)
        if match is None or not tx.spend_totp_step(account.id, match.step, confirm=True):
            raise InvalidError(
                "That code does not match the authenticator app; check the app's clock and type the "
                "code it shows now",
                field="code",
            )
        if not tx.unused_recovery_codes(account.id):
            codes = recovery.new_recovery_codes()
            tx.replace_recovery_codes(account.id, [recovery.hash_recovery_code(c) for c in codes])
    _notify(
        platform, account, "mfa_enabled", {"method": "authenticator app"}, ("second_factor", "totp")
    )
    return codes


def disable_totp(platform: Platform, account: Account) -> None:
    with platform.store.transaction() as tx:
        if tx.get_totp(account.id) is None:
            raise NotFoundError("No authenticator app is enrolled")
        tx.delete_totp(account.id)
        if not account_has_second_factor(tx, account.id):
            tx.delete_recovery_codes(account.id)
    _notify(platform, account, "mfa_disabled", {"method": "authenticator app"})


# -- recovery codes -----------------------------------------------------------------------------------


def regenerate_recovery_codes(platform: Platform, account: Account) -> list[str]:
    """Ten new codes; the old ones stop working."""
    codes = recovery.new_recovery_codes()
    with platform.store.transaction() as tx:
        if not account_has_second_factor(tx, account.id):
            raise ConflictError("Enable two-factor authentication before making recovery codes")
        tx.replace_recovery_codes(account.id, [recovery.hash_recovery_code(c) for c in codes])
    _notify(platform, account, "recovery_codes_regenerated", {})
    return codes


# -- checking a second factor -------------------------------------------------------------------------


def two_factor_error(message: str | None = None) -> PolicyError:
    return PolicyError(
        message
        or "A two-factor code is required: send the code from your authenticator app (or a recovery "
        "code) in the Heroku-Two-Factor-Code header.",
        error_id="two_factor",
    )


def verify_code(platform: Platform, account: Account, code: str | None) -> SecondFactorMethod:
    """Check a TOTP or recovery code for ``account``; each works once. ``PolicyError`` (``two_factor``)
    when it is missing or wrong. A recovery code used is notified and the rest counted."""
    if not code or not code.strip():
        raise two_factor_error()
    now = platform.clock.now()
    if recovery.looks_like_recovery_code(code):
        with platform.store.transaction() as tx:
            found = recovery.match_recovery_code(code, tx.unused_recovery_codes(account.id))
            if found is None or not tx.spend_recovery_code(found):
                raise two_factor_error("That recovery code is not valid (each works once).")
            left = len(tx.unused_recovery_codes(account.id))
        _notify(platform, account, "recovery_code_used", {"remaining": str(left)})
        return "recovery-code"
    with platform.store.transaction() as tx:
        totp = tx.get_totp(account.id)
        if totp is None or totp.confirmed_at is None:
            raise two_factor_error(
                "This account has no authenticator app; use a recovery code or a security key."
            )
        match = mfa.verify_totp(totp.secret, code, now, last_step=totp.last_step)
        if match is None or not tx.spend_totp_step(account.id, match.step):
            raise two_factor_error(
                "That two-factor code is not valid: it is wrong, too old, or was used already."
            )
    return "totp"


def verify_second_factor(
    platform: Platform, account: Account, code: str, context: RequestContext | None = None
) -> SecondFactorMethod:
    """``verify_code`` for sign-in (``control.passwords.verify_login``): a wrong code is
    ``UnauthorizedError``, so that it counts as a failed login."""
    try:
        return verify_code(platform, account, code)
    except PolicyError as exc:
        raise UnauthorizedError("Invalid credentials provided.") from exc


def remove_second_factor_by_id(platform: Platform, account: Account, item_id: str) -> None:
    """For "this wasn't me" links: remove the security key ``item_id``, or the authenticator app."""
    try:
        if item_id == "totp":
            disable_totp(platform, account)
        else:
            remove_webauthn_credential(platform, account, item_id)
    except NotFoundError:
        return


# -- WebAuthn ---------------------------------------------------------------------------------------


def relying_party(platform: Platform) -> webauthn.RelyingParty:
    """Credentials are bound to the host of the platform's public URL (the dashboard and API host)."""
    parts = urlsplit(platform.settings.api_url)
    return webauthn.RelyingParty(
        id=parts.hostname or platform.settings.domain,
        name="Dockyard",
        origins=(f"{parts.scheme}://{parts.netloc}",),
    )


def begin_webauthn_registration(platform: Platform, account: Account) -> dict[str, Any]:
    rp = relying_party(platform)
    challenge = webauthn.new_challenge()
    with platform.store.transaction() as tx:
        existing = tuple(c.credential_id for c in tx.list_webauthn_credentials(account.id))
        tx.add_challenge(
            account.id,
            "webauthn.register",
            challenge,
            platform.clock.now() + CHALLENGE_LIFETIME,
        )
    return webauthn.registration_options(
        rp,
        user_handle=account.id.encode(),
        user_name=account.email,
        display_name=account.name or account.email,
        challenge=challenge,
        exclude=existing,
    )


def _challenge_of(client_data_json: str) -> str:
    import json

    try:
        data = json.loads(webauthn.b64url_decode(client_data_json))
    except (ValueError, UnicodeDecodeError) as exc:
        raise webauthn.WebAuthnError("clientDataJSON is not JSON") from exc
    challenge = data.get("challenge") if isinstance(data, dict) else None
    if not isinstance(challenge, str):
        raise webauthn.WebAuthnError("clientDataJSON carries no challenge")
    return challenge


def finish_webauthn_registration(
    platform: Platform,
    account: Account,
    *,
    client_data_json: str,
    attestation_object: str,
    name: str = "",
) -> tuple[WebAuthnCredential, list[str]]:
    """Register the credential the browser created; the account's first second factor also gets ten
    recovery codes (returned, shown once)."""
    rp = relying_party(platform)
    challenge = _challenge_of(client_data_json)
    codes: list[str] = []
    with platform.store.transaction() as tx:
        if not tx.take_challenge(account.id, "webauthn.register", challenge):
            raise webauthn.WebAuthnError("the challenge is unknown, used or expired; start again")
        created = webauthn.verify_registration(
            rp,
            challenge=challenge,
            client_data_json=client_data_json,
            attestation_object=attestation_object,
        )
        had_factor = account_has_second_factor(tx, account.id)
        credential = tx.add_webauthn_credential(
            account.id,
            created.credential_id,
            created.public_key,
            created.sign_count,
            (name or "security key")[:100],
        )
        if not had_factor and not tx.unused_recovery_codes(account.id):
            codes = recovery.new_recovery_codes()
            tx.replace_recovery_codes(account.id, [recovery.hash_recovery_code(c) for c in codes])
    _notify(
        platform,
        account,
        "mfa_enabled",
        {"method": f"security key {credential.name}"},
        ("second_factor", credential.id),
    )
    return credential, codes


def begin_webauthn_assertion(platform: Platform, account: Account) -> dict[str, Any]:
    rp = relying_party(platform)
    challenge = webauthn.new_challenge()
    with platform.store.transaction() as tx:
        allow = tuple(c.credential_id for c in tx.list_webauthn_credentials(account.id))
        if not allow:
            raise NotFoundError("This account has no security key or passkey")
        tx.add_challenge(
            account.id, "webauthn.assert", challenge, platform.clock.now() + CHALLENGE_LIFETIME
        )
    return webauthn.assertion_options(rp, challenge=challenge, allow=allow)


def verify_webauthn_assertion(
    platform: Platform,
    account: Account,
    *,
    credential_id: str,
    client_data_json: str,
    authenticator_data: str,
    signature: str,
) -> WebAuthnCredential:
    """Check an assertion made for a challenge this account was given; the credential's counter moves."""
    rp = relying_party(platform)
    challenge = _challenge_of(client_data_json)
    with platform.store.transaction() as tx:
        if not tx.take_challenge(account.id, "webauthn.assert", challenge):
            raise webauthn.WebAuthnError("the challenge is unknown, used or expired; start again")
        stored = next(
            (
                c
                for c in tx.list_webauthn_credentials(account.id)
                if c.credential_id == credential_id
            ),
            None,
        )
        if stored is None:
            raise webauthn.WebAuthnError("that credential is not registered to this account")
        verified = webauthn.verify_assertion(
            rp,
            challenge=challenge,
            credential_id=credential_id,
            client_data_json=client_data_json,
            authenticator_data=authenticator_data,
            signature=signature,
            public_key=stored.public_key,
            stored_sign_count=stored.sign_count,
        )
        if not tx.spend_webauthn_counter(stored.id, stored.sign_count, verified.sign_count):
            raise webauthn.WebAuthnError("the credential was used at the same time elsewhere")
    return stored


def remove_webauthn_credential(
    platform: Platform, account: Account, ref: str
) -> WebAuthnCredential:
    with platform.store.transaction() as tx:
        removed = tx.delete_webauthn_credential(account.id, ref)
        if not account_has_second_factor(tx, account.id):
            tx.delete_recovery_codes(account.id)
    _notify(platform, account, "mfa_disabled", {"method": f"security key {removed.name}"})
    return removed
