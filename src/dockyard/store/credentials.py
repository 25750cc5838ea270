"""Store methods of account security: passwords, notification addresses, sign-ups, sessions, password
resets, login throttling, login origins and "this wasn't me" links.

Secrets never reach this module: tokens arrive as SHA-256 digests and passwords as argon2id hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from dockyard.store.models import (
    AccountEmailRow,
    AccountRow,
    LoginFailureRow,
    LoginOriginRow,
    LoginThrottleRow,
    PasswordResetRow,
    PasswordRow,
    RepudiationRow,
    SessionRow,
    SignupRow,
)
from dockyard.store.unit import TxBase, new_id
from dockyard.types import AccountId


@dataclass(frozen=True)
class Signup:
    id: str
    email: str
    name: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    id: str
    account_id: AccountId
    kind: str
    created_at: datetime
    authenticated_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    address: str
    user_agent: str


@dataclass(frozen=True)
class PasswordReset:
    id: str
    account_id: AccountId | None
    """None for a reset asked for an unknown email (it can never be used)."""
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class ThrottleState:
    email: str
    consecutive: int
    last_failure_at: datetime | None
    last_success_at: datetime | None
    retry_at: datetime | None
    locked_at: datetime | None


@dataclass(frozen=True)
class Repudiation:
    id: str
    account_id: AccountId
    event: str
    item_kind: str
    item_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


def _session(row: SessionRow) -> Session:
    return Session(
        id=row.id,
        account_id=AccountId(row.account_id),
        kind=row.kind,
        created_at=row.created_at,
        authenticated_at=row.authenticated_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        address=row.address,
        user_agent=row.user_agent,
    )


def _throttle(row: LoginThrottleRow) -> ThrottleState:
    return ThrottleState(
        email=row.email,
        consecutive=row.consecutive,
        last_failure_at=row.last_failure_at,
        last_success_at=row.last_success_at,
        retry_at=row.retry_at,
        locked_at=row.locked_at,
    )


def _repudiation(row: RepudiationRow) -> Repudiation:
    return Repudiation(
        id=row.id,
        account_id=AccountId(row.account_id),
        event=row.event,
        item_kind=row.item_kind,
        item_id=row.item_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


class CredentialsTx(TxBase):
    # -- passwords ------------------------------------------------------------------------------------

    def password_hash(self, account_id: str) -> str | None:
        """The account's argon2id hash; None when it never had a password (or it was disabled)."""
        row = self.session.get(PasswordRow, account_id)
        return row.password_hash if row is not None and row.password_hash else None

    def set_password_hash(self, account_id: str, password_hash: str) -> None:
        """Store a new hash (or ``""`` to disable the password until a reset)."""
        row = self.session.get(PasswordRow, account_id)
        if row is None:
            self.session.add(
                PasswordRow(
                    account_id=account_id, password_hash=password_hash, changed_at=self._now()
                )
            )
        else:
            row.password_hash = password_hash
            row.changed_at = self._now()
        self.session.flush()

    def replace_password_hash(self, account_id: str, old: str, new: str) -> bool:
        """Swap a hash for an upgraded one unless it changed meanwhile; True when swapped."""
        result = self.session.execute(
            update(PasswordRow)
            .where(PasswordRow.account_id == account_id, PasswordRow.password_hash == old)
            .values(password_hash=new)
        )
        return bool(getattr(result, "rowcount", 0))

    # -- notification addresses -----------------------------------------------------------------------

    def add_account_email(self, account_id: str, email: str, *, verified: bool) -> None:
        now = self._now()
        self.session.add(
            AccountEmailRow(
                id=new_id(),
                account_id=account_id,
                email=email.lower(),
                verified_at=now if verified else None,
                created_at=now,
            )
        )
        self._flush_unique(f"{email} is already an address of an account")

    def notification_addresses(self, account_id: str) -> list[str]:
        """The account's email, then every other verified address."""
        primary = self.session.scalar(select(AccountRow.email).where(AccountRow.id == account_id))
        others = self.session.scalars(
            select(AccountEmailRow.email)
            .where(
                AccountEmailRow.account_id == account_id,
                AccountEmailRow.verified_at.is_not(None),
            )
            .order_by(AccountEmailRow.created_at, AccountEmailRow.email)
        )
        addresses = [primary] if primary else []
        addresses += [email for email in others if email not in addresses]
        return addresses

    # -- sign-ups -------------------------------------------------------------------------------------

    def create_signup(self, email: str, name: str, token_hash: str, expires_at: datetime) -> Signup:
        row = SignupRow(
            id=new_id(),
            email=email.lower(),
            name=name,
            token_hash=token_hash,
            created_at=self._now(),
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return Signup(row.id, row.email, row.name, row.created_at, row.expires_at)

    def signup_for_token(self, token_hash: str) -> Signup | None:
        row = self.session.scalars(
            select(SignupRow).where(SignupRow.token_hash == token_hash)
        ).first()
        if row is None:
            return None
        return Signup(row.id, row.email, row.name, row.created_at, row.expires_at)

    def delete_signups(self, email: str) -> None:
        self.session.execute(delete(SignupRow).where(SignupRow.email == email.lower()))

    def delete_expired_signups(self, now: datetime) -> None:
        self.session.execute(delete(SignupRow).where(SignupRow.expires_at <= now))

    # -- sessions -------------------------------------------------------------------------------------

    def create_session(
        self,
        account_id: str,
        token_hash: str,
        *,
        kind: str,
        expires_at: datetime,
        address: str,
        user_agent: str,
    ) -> Session:
        now = self._now()
        row = SessionRow(
            id=new_id(),
            account_id=account_id,
            token_hash=token_hash,
            kind=kind,
            created_at=now,
            authenticated_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            address=address[:64],
            user_agent=user_agent[:300],
        )
        self.session.add(row)
        self._flush_unique("That session already exists")
        return _session(row)

    def session_for_token(self, token_hash: str) -> Session | None:
        row = self.session.scalars(
            select(SessionRow).where(SessionRow.token_hash == token_hash)
        ).first()
        return None if row is None else _session(row)

    def get_session(self, session_id: str) -> Session | None:
        row = self.session.get(SessionRow, session_id)
        return None if row is None else _session(row)

    def touch_session(self, session_id: str, *, address: str) -> None:
        self.session.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(last_seen_at=self._now(), address=address[:64])
        )

    def rotate_session(self, session_id: str, token_hash: str, *, reauthenticated: bool) -> None:
        """Give the session a new secret (the old one stops working); a re-authentication also moves
        ``authenticated_at``."""
        values: dict[str, object] = {"token_hash": token_hash, "last_seen_at": self._now()}
        if reauthenticated:
            values["authenticated_at"] = self._now()
        self.session.execute(update(SessionRow).where(SessionRow.id == session_id).values(values))

    def list_sessions(self, account_id: str) -> list[Session]:
        rows = self.session.scalars(
            select(SessionRow)
            .where(SessionRow.account_id == account_id)
            .order_by(SessionRow.created_at, SessionRow.id)
        )
        return [_session(row) for row in rows]

    def delete_session(self, session_id: str) -> None:
        self.session.execute(delete(SessionRow).where(SessionRow.id == session_id))

    def delete_sessions(self, account_id: str, *, keep: str | None = None) -> int:
        """End every session of the account but ``keep``; returns how many ended."""
        query = delete(SessionRow).where(SessionRow.account_id == account_id)
        if keep is not None:
            query = query.where(SessionRow.id != keep)
        return int(getattr(self.session.execute(query), "rowcount", 0))

    def delete_stale_sessions(self, now: datetime, idle_before: datetime) -> None:
        self.session.execute(
            delete(SessionRow).where(
                (SessionRow.expires_at <= now) | (SessionRow.last_seen_at <= idle_before)
            )
        )

    # -- password resets ------------------------------------------------------------------------------

    def create_password_reset(
        self, account_id: str | None, token_hash: str, expires_at: datetime
    ) -> PasswordReset:
        row = PasswordResetRow(
            id=new_id(),
            account_id=account_id,
            token_hash=token_hash,
            created_at=self._now(),
            expires_at=expires_at,
            used_at=None,
        )
        self.session.add(row)
        self.session.flush()
        account = AccountId(row.account_id) if row.account_id else None
        return PasswordReset(row.id, account, row.created_at, row.expires_at, None)

    def password_reset_for_token(self, token_hash: str) -> PasswordReset | None:
        row = self.session.scalars(
            select(PasswordResetRow).where(PasswordResetRow.token_hash == token_hash)
        ).first()
        if row is None:
            return None
        account = AccountId(row.account_id) if row.account_id else None
        return PasswordReset(row.id, account, row.created_at, row.expires_at, row.used_at)

    def use_password_reset(self, reset_id: str) -> bool:
        """Mark the reset used; False when it already was (two finalizations racing)."""
        result = self.session.execute(
            update(PasswordResetRow)
            .where(PasswordResetRow.id == reset_id, PasswordResetRow.used_at.is_(None))
            .values(used_at=self._now())
        )
        return bool(getattr(result, "rowcount", 0))

    def delete_expired_password_resets(self, now: datetime) -> None:
        self.session.execute(delete(PasswordResetRow).where(PasswordResetRow.expires_at <= now))

    def void_password_resets(self, account_id: str) -> None:
        """Every unused reset link of the account stops working."""
        self.session.execute(
            update(PasswordResetRow)
            .where(PasswordResetRow.account_id == account_id, PasswordResetRow.used_at.is_(None))
            .values(used_at=self._now())
        )

    # -- login throttling -----------------------------------------------------------------------------

    def throttle_state(self, email: str) -> ThrottleState | None:
        row = self.session.get(LoginThrottleRow, email.lower())
        return None if row is None else _throttle(row)

    def save_throttle_state(self, state: ThrottleState) -> None:
        row = self.session.get(LoginThrottleRow, state.email)
        if row is None:
            row = LoginThrottleRow(email=state.email)
            self.session.add(row)
        row.consecutive = state.consecutive
        row.last_failure_at = state.last_failure_at
        row.last_success_at = state.last_success_at
        row.retry_at = state.retry_at
        row.locked_at = state.locked_at
        self.session.flush()

    def add_login_failure(self, email: str, source: str) -> None:
        self.session.add(
            LoginFailureRow(id=new_id(), email=email.lower(), source=source, at=self._now())
        )
        self.session.flush()

    def login_failure_times(
        self, *, since: datetime, email: str | None = None, source: str | None = None
    ) -> list[datetime]:
        """Times of the failures since ``since`` of one email or one source, oldest first."""
        query = select(LoginFailureRow.at).where(LoginFailureRow.at > since)
        if email is not None:
            query = query.where(LoginFailureRow.email == email.lower())
        if source is not None:
            query = query.where(LoginFailureRow.source == source)
        return list(self.session.scalars(query.order_by(LoginFailureRow.at)))

    def delete_login_failures(self, before: datetime) -> None:
        self.session.execute(delete(LoginFailureRow).where(LoginFailureRow.at <= before))

    # -- login origins --------------------------------------------------------------------------------

    def remember_login_origin(self, account_id: str, kind: str, value: str) -> bool:
        """Record an address or device of a login; True when the account never used it before."""
        known = self.session.scalar(
            select(func.count()).where(
                LoginOriginRow.account_id == account_id,
                LoginOriginRow.kind == kind,
                LoginOriginRow.value == value,
            )
        )
        if known:
            return False
        self.session.add(
            LoginOriginRow(
                id=new_id(),
                account_id=account_id,
                kind=kind,
                value=value[:64],
                first_seen_at=self._now(),
            )
        )
        self._flush_unique("That login origin is already known")
        return True

    def has_login_origins(self, account_id: str) -> bool:
        count = self.session.scalar(
            select(func.count()).where(LoginOriginRow.account_id == account_id)
        )
        return bool(count)

    # -- "this wasn't me" links -----------------------------------------------------------------------

    def create_repudiation(
        self,
        account_id: str,
        token_hash: str,
        *,
        event: str,
        item_kind: str,
        item_id: str,
        expires_at: datetime,
    ) -> Repudiation:
        row = RepudiationRow(
            id=new_id(),
            account_id=account_id,
            token_hash=token_hash,
            event=event,
            item_kind=item_kind,
            item_id=item_id,
            created_at=self._now(),
            expires_at=expires_at,
            used_at=None,
        )
        self.session.add(row)
        self.session.flush()
        return _repudiation(row)

    def repudiation_for_token(self, token_hash: str) -> Repudiation | None:
        row = self.session.scalars(
            select(RepudiationRow).where(RepudiationRow.token_hash == token_hash)
        ).first()
        return None if row is None else _repudiation(row)

    def use_repudiation(self, repudiation_id: str) -> bool:
        result = self.session.execute(
            update(RepudiationRow)
            .where(RepudiationRow.id == repudiation_id, RepudiationRow.used_at.is_(None))
            .values(used_at=self._now())
        )
        return bool(getattr(result, "rowcount", 0))
