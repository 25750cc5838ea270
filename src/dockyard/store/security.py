"""Store methods for account security: roles and deactivation, second factors (TOTP, WebAuthn, recovery
codes), WebAuthn challenges, OAuth authorizations and tokens, app transfers, soft deletions, high-profile
apps and operators' support access. Token secrets are kept only as SHA-256 and recovery codes as argon2id.

Single-use things (a TOTP step, a recovery code, a refresh token, a challenge) are spent with a conditional
UPDATE or DELETE whose row count says whether this caller spent it, so two concurrent uses cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update

from dockyard.errors import NotFoundError
from dockyard.store.models import (
    AccountRow,
    AccountSecurityRow,
    ApiKeyRow,
    ApiKeyUsageRow,
    AppDeletionRow,
    AppRow,
    AppSecurityRow,
    AppTransferRow,
    AuthChallengeRow,
    OAuthAuthorizationRow,
    OAuthTokenRow,
    RecoveryCodeRow,
    SshKeyRow,
    SupportAccessRow,
    TotpCredentialRow,
    WebAuthnCredentialRow,
)
from dockyard.store.unit import TxBase, new_id


@dataclass(frozen=True)
class AccountSecurity:
    account_id: str
    role: str
    mfa_grace_from: datetime | None
    deactivated_at: datetime | None


@dataclass(frozen=True)
class TotpCredential:
    account_id: str
    secret: str
    confirmed_at: datetime | None
    last_step: int | None


@dataclass(frozen=True)
class WebAuthnCredential:
    id: str
    account_id: str
    credential_id: str
    public_key: str
    sign_count: int
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Authorization:
    id: str
    account_id: str
    kind: str
    description: str
    scopes: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    authenticated_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str


@dataclass(frozen=True)
class OAuthToken:
    id: str
    authorization_id: str
    kind: str
    created_at: datetime
    expires_at: datetime | None
    used_at: datetime | None


@dataclass(frozen=True)
class ApiKeyGrant:
    """A legacy ``dky_`` API key seen as an authorization."""

    id: str
    account_id: str
    description: str
    created_at: datetime
    last_used_at: datetime | None
    last_used_ip: str
    authenticated_at: datetime | None


@dataclass(frozen=True)
class AppTransfer:
    id: str
    app_id: str
    sender_id: str
    recipient_id: str
    state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AppDeletion:
    app_id: str
    deleted_at: datetime
    purge_at: datetime
    deleted_by: str | None
    formation: dict[str, int]
    maintenance: bool


@dataclass(frozen=True)
class SupportAccess:
    id: str
    app_id: str
    operator_id: str
    operator_email: str
    reason: str
    created_at: datetime
    expires_at: datetime


def _authorization(row: OAuthAuthorizationRow) -> Authorization:
    return Authorization(
        id=row.id,
        account_id=row.account_id,
        kind=row.kind,
        description=row.description,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        authenticated_at=row.authenticated_at,
        last_used_at=row.last_used_at,
        last_used_ip=row.last_used_ip,
    )


def _token(row: OAuthTokenRow) -> OAuthToken:
    return OAuthToken(
        id=row.id,
        authorization_id=row.authorization_id,
        kind=row.kind,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def _webauthn(row: WebAuthnCredentialRow) -> WebAuthnCredential:
    return WebAuthnCredential(
        id=row.id,
        account_id=row.account_id,
        credential_id=row.credential_id,
        public_key=row.public_key,
        sign_count=row.sign_count,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


def _transfer(row: AppTransferRow) -> AppTransfer:
    return AppTransfer(
        id=row.id,
        app_id=row.app_id,
        sender_id=row.sender_id,
        recipient_id=row.recipient_id,
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _changed(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


class SecurityTx(TxBase):
    # -- roles and deactivation -----------------------------------------------------------------------

    def _security_row(self, account_id: str) -> AccountSecurityRow:
        row = self.session.get(AccountSecurityRow, account_id)
        if row is None:
            row = AccountSecurityRow(account_id=account_id, role="user")
            self.session.add(row)
        return row

    def account_security(self, account_id: str) -> AccountSecurity:
        row = self.session.get(AccountSecurityRow, account_id)
        if row is None:
            return AccountSecurity(account_id, "user", None, None)
        return AccountSecurity(account_id, row.role, row.mfa_grace_from, row.deactivated_at)

    def set_account_role(self, account_id: str, role: str) -> None:
        self._security_row(account_id).role = role

    def mark_deactivated(self, account_id: str, by: str | None) -> None:
        row = self._security_row(account_id)
        row.deactivated_at = self._now()
        row.deactivated_by = by

    # -- TOTP -----------------------------------------------------------------------------------------

    def get_totp(self, account_id: str) -> TotpCredential | None:
        row = self.session.get(TotpCredentialRow, account_id)
        if row is None:
            return None
        return TotpCredential(row.account_id, row.secret, row.confirmed_at, row.last_step)

    def put_pending_totp(self, account_id: str, secret: str) -> None:
        self.session.execute(
            delete(TotpCredentialRow).where(TotpCredentialRow.account_id == account_id)
        )
        self.session.add(
            TotpCredentialRow(
                account_id=account_id,
                secret=secret,
                confirmed_at=None,
                last_step=None,
                created_at=self._now(),
            )
        )
        self.session.flush()

    def spend_totp_step(self, account_id: str, step: int, *, confirm: bool = False) -> bool:
        """Record ``step`` as used unless it (or a later one) already was; True if this call did."""
        values: dict[str, Any] = {"last_step": step}
        if confirm:
            values["confirmed_at"] = self._now()
        result = self.session.execute(
            update(TotpCredentialRow)
            .where(
                TotpCredentialRow.account_id == account_id,
                or_(TotpCredentialRow.last_step.is_(None), TotpCredentialRow.last_step < step),
            )
            .values(**values)
        )
        return _changed(result) == 1

    def delete_totp(self, account_id: str) -> None:
        self.session.execute(
            delete(TotpCredentialRow).where(TotpCredentialRow.account_id == account_id)
        )

    # -- WebAuthn -------------------------------------------------------------------------------------

    def add_webauthn_credential(
        self, account_id: str, credential_id: str, public_key: str, sign_count: int, name: str
    ) -> WebAuthnCredential:
        row = WebAuthnCredentialRow(
            id=new_id(),
            account_id=account_id,
            credential_id=credential_id,
            public_key=public_key,
            sign_count=sign_count,
            name=name,
            aaguid="",
            created_at=self._now(),
            last_used_at=None,
        )
        self.session.add(row)
        self._flush_unique("That security key is already registered")
        return _webauthn(row)

    def list_webauthn_credentials(self, account_id: str) -> list[WebAuthnCredential]:
        found = self.session.scalars(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.account_id == account_id)
            .order_by(WebAuthnCredentialRow.created_at)
        )
        return [_webauthn(row) for row in found]

    def spend_webauthn_counter(self, credential_row_id: str, old: int, new: int) -> bool:
        """Move the signature counter from ``old`` to ``new`` unless someone else moved it first."""
        result = self.session.execute(
            update(WebAuthnCredentialRow)
            .where(
                WebAuthnCredentialRow.id == credential_row_id,
                WebAuthnCredentialRow.sign_count == old,
            )
            .values(sign_count=new, last_used_at=self._now())
        )
        return _changed(result) == 1

    def delete_webauthn_credential(self, account_id: str, ref: str) -> WebAuthnCredential:
        for credential in self.list_webauthn_credentials(account_id):
            if ref in (credential.id, credential.credential_id, credential.name):
                self.session.execute(
                    delete(WebAuthnCredentialRow).where(WebAuthnCredentialRow.id == credential.id)
                )
                return credential
        raise NotFoundError(f"Couldn't find that security key: {ref}")

    # -- recovery codes -------------------------------------------------------------------------------

    def replace_recovery_codes(self, account_id: str, hashes: list[str]) -> None:
        self.session.execute(
            delete(RecoveryCodeRow).where(RecoveryCodeRow.account_id == account_id)
        )
        now = self._now()
        for digest in hashes:
            self.session.add(
                RecoveryCodeRow(
                    id=new_id(), account_id=account_id, code_hash=digest, created_at=now
                )
            )
        self.session.flush()

    def unused_recovery_codes(self, account_id: str) -> list[tuple[str, str]]:
        found = self.session.execute(
            select(RecoveryCodeRow.id, RecoveryCodeRow.code_hash)
            .where(RecoveryCodeRow.account_id == account_id, RecoveryCodeRow.used_at.is_(None))
            .order_by(RecoveryCodeRow.id)
        )
        return [(row[0], row[1]) for row in found]

    def spend_recovery_code(self, code_id: str) -> bool:
        result = self.session.execute(
            update(RecoveryCodeRow)
            .where(RecoveryCodeRow.id == code_id, RecoveryCodeRow.used_at.is_(None))
            .values(used_at=self._now())
        )
        return _changed(result) == 1

    def delete_recovery_codes(self, account_id: str) -> None:
        self.session.execute(
            delete(RecoveryCodeRow).where(RecoveryCodeRow.account_id == account_id)
        )

    # -- challenges -----------------------------------------------------------------------------------

    def add_challenge(
        self, account_id: str, purpose: str, challenge: str, expires_at: datetime
    ) -> None:
        self.session.execute(
            delete(AuthChallengeRow).where(AuthChallengeRow.expires_at < self._now())
        )
        self.session.add(
            AuthChallengeRow(
                id=new_id(),
                account_id=account_id,
                purpose=purpose,
                challenge=challenge,
                created_at=self._now(),
                expires_at=expires_at,
            )
        )
        self.session.flush()

    def take_challenge(self, account_id: str, purpose: str, challenge: str) -> bool:
        """Spend a challenge this account was given for ``purpose``; False if unknown or expired."""
        result = self.session.execute(
            delete(AuthChallengeRow).where(
                AuthChallengeRow.account_id == account_id,
                AuthChallengeRow.purpose == purpose,
                AuthChallengeRow.challenge == challenge,
                AuthChallengeRow.expires_at > self._now(),
            )
        )
        return _changed(result) == 1

    # -- OAuth authorizations and tokens --------------------------------------------------------------

    def create_authorization(
        self,
        account_id: str,
        *,
        kind: str,
        description: str,
        scopes: tuple[str, ...],
        expires_at: datetime | None,
        authenticated_at: datetime | None,
    ) -> Authorization:
        now = self._now()
        row = OAuthAuthorizationRow(
            id=new_id(),
            account_id=account_id,
            kind=kind,
            description=description,
            scopes=list(scopes),
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
            revoked_at=None,
            authenticated_at=authenticated_at,
            last_used_at=None,
            last_used_ip="",
        )
        self.session.add(row)
        self.session.flush()
        return _authorization(row)

    def add_oauth_token(
        self, authorization_id: str, kind: str, token_hash: str, expires_at: datetime | None
    ) -> OAuthToken:
        row = OAuthTokenRow(
            id=new_id(),
            authorization_id=authorization_id,
            kind=kind,
            token_hash=token_hash,
            created_at=self._now(),
            expires_at=expires_at,
            used_at=None,
        )
        self.session.add(row)
        self._flush_unique("That token exists already")
        return _token(row)

    def find_oauth_token(self, token_hash: str) -> tuple[OAuthToken, Authorization] | None:
        found = self.session.execute(
            select(OAuthTokenRow, OAuthAuthorizationRow)
            .join(
                OAuthAuthorizationRow,
                OAuthAuthorizationRow.id == OAuthTokenRow.authorization_id,
            )
            .where(OAuthTokenRow.token_hash == token_hash)
        ).first()
        if found is None:
            return None
        return _token(found[0]), _authorization(found[1])

    def oauth_tokens(self, authorization_id: str) -> list[OAuthToken]:
        found = self.session.scalars(
            select(OAuthTokenRow)
            .where(OAuthTokenRow.authorization_id == authorization_id)
            .order_by(OAuthTokenRow.created_at)
        )
        return [_token(row) for row in found]

    def spend_refresh_token(self, token_id: str) -> bool:
        result = self.session.execute(
            update(OAuthTokenRow)
            .where(OAuthTokenRow.id == token_id, OAuthTokenRow.used_at.is_(None))
            .values(used_at=self._now())
        )
        return _changed(result) == 1

    def delete_oauth_tokens(self, authorization_id: str, kind: str | None = None) -> None:
        query = delete(OAuthTokenRow).where(OAuthTokenRow.authorization_id == authorization_id)
        if kind is not None:
            query = query.where(OAuthTokenRow.kind == kind)
        self.session.execute(query)

    def list_authorizations(self, account_id: str) -> list[Authorization]:
        found = self.session.scalars(
            select(OAuthAuthorizationRow)
            .where(
                OAuthAuthorizationRow.account_id == account_id,
                OAuthAuthorizationRow.revoked_at.is_(None),
            )
            .order_by(OAuthAuthorizationRow.created_at)
        )
        return [_authorization(row) for row in found]

    def get_authorization(self, authorization_id: str) -> Authorization:
        row = self.session.get(OAuthAuthorizationRow, authorization_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that authorization: {authorization_id}")
        return _authorization(row)

    def revoke_authorization(self, authorization_id: str) -> None:
        self.session.execute(
            update(OAuthAuthorizationRow)
            .where(
                OAuthAuthorizationRow.id == authorization_id,
                OAuthAuthorizationRow.revoked_at.is_(None),
            )
            .values(revoked_at=self._now(), updated_at=self._now())
        )
        self.delete_oauth_tokens(authorization_id)

    def revoke_account_authorizations(self, account_id: str, *, keep: str | None = None) -> int:
        ids = [a.id for a in self.list_authorizations(account_id) if keep is None or a.id != keep]
        for authorization_id in ids:
            self.revoke_authorization(authorization_id)
        return len(ids)

    def touch_authorization(self, authorization_id: str, address: str) -> None:
        self.session.execute(
            update(OAuthAuthorizationRow)
            .where(OAuthAuthorizationRow.id == authorization_id)
            .values(last_used_at=self._now(), last_used_ip=address[:64])
        )

    def set_authorization_authenticated(self, authorization_id: str, at: datetime) -> None:
        self.session.execute(
            update(OAuthAuthorizationRow)
            .where(OAuthAuthorizationRow.id == authorization_id)
            .values(authenticated_at=at, updated_at=self._now())
        )

    def update_authorization_description(self, authorization_id: str, description: str) -> None:
        self.session.execute(
            update(OAuthAuthorizationRow)
            .where(OAuthAuthorizationRow.id == authorization_id)
            .values(description=description, updated_at=self._now())
        )

    # -- legacy API keys as authorizations ------------------------------------------------------------

    def _api_key_grant(self, key: ApiKeyRow) -> ApiKeyGrant:
        usage = self.session.get(ApiKeyUsageRow, key.id)
        return ApiKeyGrant(
            id=key.id,
            account_id=key.account_id,
            description=key.description,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            last_used_ip=usage.last_used_ip if usage else "",
            authenticated_at=usage.authenticated_at if usage else None,
        )

    def api_key_grant(self, token_hash: str) -> ApiKeyGrant | None:
        key = self.session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.token_hash == token_hash)
        ).first()
        return None if key is None else self._api_key_grant(key)

    def list_api_key_grants(self, account_id: str) -> list[ApiKeyGrant]:
        found = self.session.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.account_id == account_id)
            .order_by(ApiKeyRow.created_at)
        )
        return [self._api_key_grant(key) for key in found]

    def _usage(self, api_key_id: str) -> ApiKeyUsageRow:
        usage = self.session.get(ApiKeyUsageRow, api_key_id)
        if usage is None:
            usage = ApiKeyUsageRow(api_key_id=api_key_id, last_used_ip="", authenticated_at=None)
            self.session.add(usage)
        return usage

    def touch_api_key_grant(self, api_key_id: str, address: str) -> None:
        self.session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == api_key_id).values(last_used_at=self._now())
        )
        self._usage(api_key_id).last_used_ip = address[:64]

    def set_api_key_authenticated(self, api_key_id: str, at: datetime) -> None:
        self._usage(api_key_id).authenticated_at = at

    def delete_api_key(self, api_key_id: str) -> None:
        self.session.execute(delete(ApiKeyRow).where(ApiKeyRow.id == api_key_id))

    def delete_account_api_keys(self, account_id: str) -> int:
        return _changed(
            self.session.execute(delete(ApiKeyRow).where(ApiKeyRow.account_id == account_id))
        )

    def delete_account_ssh_keys(self, account_id: str) -> int:
        return _changed(
            self.session.execute(delete(SshKeyRow).where(SshKeyRow.account_id == account_id))
        )

    # -- app transfers --------------------------------------------------------------------------------

    def create_transfer(self, app_id: str, sender_id: str, recipient_id: str) -> AppTransfer:
        now = self._now()
        self.session.execute(
            update(AppTransferRow)
            .where(AppTransferRow.app_id == app_id, AppTransferRow.state == "pending")
            .values(state="cancelled", updated_at=now)
        )
        row = AppTransferRow(
            id=new_id(),
            app_id=app_id,
            sender_id=sender_id,
            recipient_id=recipient_id,
            state="pending",
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return _transfer(row)

    def get_transfer(self, transfer_id: str) -> AppTransfer:
        row = self.session.get(AppTransferRow, transfer_id)
        if row is None:
            raise NotFoundError(f"Couldn't find that app transfer: {transfer_id}")
        return _transfer(row)

    def list_transfers(self, account_id: str) -> list[AppTransfer]:
        found = self.session.scalars(
            select(AppTransferRow)
            .where(
                or_(
                    AppTransferRow.sender_id == account_id,
                    AppTransferRow.recipient_id == account_id,
                )
            )
            .order_by(AppTransferRow.created_at)
        )
        return [_transfer(row) for row in found]

    def finish_transfer(self, transfer_id: str, state: str) -> bool:
        """Move a pending transfer to ``state``; False if it was not pending any more."""
        result = self.session.execute(
            update(AppTransferRow)
            .where(AppTransferRow.id == transfer_id, AppTransferRow.state == "pending")
            .values(state=state, updated_at=self._now())
        )
        return _changed(result) == 1

    def set_app_owner(self, app_id: str, owner_id: str) -> None:
        self.session.execute(
            update(AppRow)
            .where(AppRow.id == app_id)
            .values(owner_id=owner_id, updated_at=self._now())
        )

    # -- soft deletion --------------------------------------------------------------------------------

    def add_deletion(
        self,
        app_id: str,
        *,
        deleted_by: str,
        purge_at: datetime,
        formation: dict[str, int],
        maintenance: bool,
    ) -> AppDeletion:
        row = AppDeletionRow(
            app_id=app_id,
            deleted_at=self._now(),
            purge_at=purge_at,
            deleted_by=deleted_by,
            formation=formation,
            maintenance=maintenance,
        )
        self.session.add(row)
        self._flush_unique("That app is deleted already")
        return self._deletion(row)

    def _deletion(self, row: AppDeletionRow) -> AppDeletion:
        return AppDeletion(
            app_id=row.app_id,
            deleted_at=row.deleted_at,
            purge_at=row.purge_at,
            deleted_by=row.deleted_by,
            formation=dict(row.formation),
            maintenance=row.maintenance,
        )

    def get_deletion(self, app_id: str) -> AppDeletion | None:
        row = self.session.get(AppDeletionRow, app_id)
        return None if row is None else self._deletion(row)

    def remove_deletion(self, app_id: str) -> None:
        self.session.execute(delete(AppDeletionRow).where(AppDeletionRow.app_id == app_id))

    def deleted_app_ids(self) -> set[str]:
        return set(self.session.scalars(select(AppDeletionRow.app_id)))

    def deletions_due(self, now: datetime) -> list[AppDeletion]:
        found = self.session.scalars(select(AppDeletionRow).where(AppDeletionRow.purge_at <= now))
        return [self._deletion(row) for row in found]

    def deletions_of_owner(self, account_id: str) -> list[tuple[AppDeletion, str]]:
        """Soft-deleted apps ``account_id`` owns, with their names."""
        found = self.session.execute(
            select(AppDeletionRow, AppRow.name)
            .join(AppRow, AppRow.id == AppDeletionRow.app_id)
            .where(AppRow.owner_id == account_id)
            .order_by(AppDeletionRow.deleted_at)
        )
        return [(self._deletion(row[0]), row[1]) for row in found]

    # -- high-profile apps ----------------------------------------------------------------------------

    def app_is_high_profile(self, app_id: str) -> bool:
        row = self.session.get(AppSecurityRow, app_id)
        return bool(row and row.high_profile)

    def set_app_high_profile(self, app_id: str, high_profile: bool) -> None:
        row = self.session.get(AppSecurityRow, app_id)
        if row is None:
            self.session.add(
                AppSecurityRow(app_id=app_id, high_profile=high_profile, updated_at=self._now())
            )
        else:
            row.high_profile = high_profile
            row.updated_at = self._now()

    # -- support access -------------------------------------------------------------------------------

    def add_support_access(
        self, app_id: str, operator_id: str, reason: str, expires_at: datetime
    ) -> SupportAccess:
        row = SupportAccessRow(
            id=new_id(),
            app_id=app_id,
            operator_id=operator_id,
            reason=reason,
            created_at=self._now(),
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return self._support(row)

    def _support(self, row: SupportAccessRow) -> SupportAccess:
        return SupportAccess(
            id=row.id,
            app_id=row.app_id,
            operator_id=row.operator_id,
            operator_email=self._email(row.operator_id) or "",
            reason=row.reason,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    def list_support_access(self, app_id: str) -> list[SupportAccess]:
        found = self.session.scalars(
            select(SupportAccessRow)
            .where(SupportAccessRow.app_id == app_id)
            .order_by(SupportAccessRow.created_at)
        )
        return [self._support(row) for row in found]

    def has_support_access(self, app_id: str, operator_id: str, now: datetime) -> bool:
        found = self.session.scalars(
            select(SupportAccessRow.id).where(
                SupportAccessRow.app_id == app_id,
                SupportAccessRow.operator_id == operator_id,
                SupportAccessRow.expires_at > now,
            )
        ).first()
        return found is not None

    def account_emails_by_id(self, account_ids: list[str]) -> dict[str, str]:
        found = self.session.execute(
            select(AccountRow.id, AccountRow.email).where(AccountRow.id.in_(account_ids))
        )
        return {row[0]: row[1] for row in found}
