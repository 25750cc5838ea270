"""Tables. The Alembic migrations in ``migrations/`` create exactly these; a test compares the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AccountRow(Timestamps, Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AppRow(Timestamps, Base):
    __tablename__ = "apps"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    stack: Mapped[str] = mapped_column(String(40))
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    restart_generation: Mapped[int] = mapped_column(Integer, default=0)


class ConfigVarRow(Base):
    __tablename__ = "config_vars"
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SlugRow(Base):
    __tablename__ = "slugs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    process_types: Mapped[dict[str, str]] = mapped_column(JSON)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stack: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BuildRow(Timestamps, Base):
    __tablename__ = "builds"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    source_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True
    )
    slug_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    release_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    output: Mapped[str] = mapped_column(Text, default="")
    buildpacks: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """Buildpack URLs this build was asked to use; None means the app's installations or detection."""


class BuildpackInstallationRow(Base):
    __tablename__ = "buildpack_installations"
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(1000))
    name: Mapped[str] = mapped_column(String(200))


class SourceRow(Base):
    """An uploaded source tarball (``POST /sources``), kept until a build uses it or it expires."""

    __tablename__ = "sources"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReleaseRow(Timestamps, Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "version", name="uq_releases_app_id_version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    slug_id: Mapped[str | None] = mapped_column(ForeignKey("slugs.id"), nullable=True)
    config: Mapped[dict[str, str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True
    )
    output: Mapped[str] = mapped_column(Text, default="", server_default="")
    """Release-phase output, when the release ran a ``release`` command."""


class FormationRow(Timestamps, Base):
    __tablename__ = "formation"
    __table_args__ = (UniqueConstraint("app_id", "type", name="uq_formation_app_id_type"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[int] = mapped_column(Integer)
    size: Mapped[str] = mapped_column(String(40))
    restart_generation: Mapped[int] = mapped_column(Integer, default=0)
    dyno_generations: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class DynoRow(Base):
    __tablename__ = "dynos"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(140))
    type: Mapped[str] = mapped_column(String(128))
    release_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    command: Mapped[str] = mapped_column(Text)
    size: Mapped[str] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(300), nullable=True)
    host: Mapped[str] = mapped_column(String(253), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """For a crashed dyno waiting out its back-off: when the agent restarts it."""


class OneOffDynoRow(Base):
    """A one-off dyno (``run.1234``) asked for through ``POST /apps/{app}/dynos``: its desired state,
    kept until it has run. The agent reports the running dyno like any other (``dynos``)."""

    __tablename__ = "one_off_dynos"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(140))
    command: Mapped[str] = mapped_column(Text)
    env: Mapped[dict[str, str]] = mapped_column(JSON)
    """Variables set for this run only, on top of the release's config."""
    size: Mapped[str] = mapped_column(String(40))
    attach: Mapped[bool] = mapped_column(Boolean)
    tty: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Attached runs: whether the client asked for a terminal (``force_no_tty`` not set)."""
    time_to_live: Mapped[int] = mapped_column(Integer)
    """Seconds after its start when the agent stops it."""
    release_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``pending`` (wanted), ``stopped`` (a stop was asked for) or ``exited`` (it ran)."""


class DomainRow(Timestamps, Base):
    __tablename__ = "domains"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    kind: Mapped[str] = mapped_column(String(16))


class CollaboratorRow(Timestamps, Base):
    __tablename__ = "collaborators"
    __table_args__ = (
        UniqueConstraint("app_id", "account_id", name="uq_collaborators_app_id_account_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )


class SshKeyRow(Timestamps, Base):
    __tablename__ = "ssh_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100), unique=True)
    comment: Mapped[str] = mapped_column(String(500), default="")


# -- Account security: passwords, sign-ups, sessions, resets, login throttling, notifications --------
# (methods in store/credentials.py; secrets are stored only as SHA-256 or argon2id hashes)


class PasswordRow(Base):
    __tablename__ = "account_passwords"
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    """An argon2id PHC string (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``): its costs travel with it.
    Empty when the password was disabled ("this wasn't me" after a password change)."""
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AccountEmailRow(Base):
    """Addresses security notifications go to (the account's own email is always one of them)."""

    __tablename__ = "account_emails"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SignupRow(Base):
    """A sign-up waiting for its email to be verified; the account exists only once it is."""

    __tablename__ = "signups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SessionRow(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``web`` (a dashboard cookie) or ``cli`` (a bearer token the CLI keeps)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    authenticated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    """The last full authentication (login, or step-up re-authentication)."""
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    """The absolute end of the session, whatever its activity."""
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class PasswordResetRow(Base):
    """A reset link. Asking for one for an unknown email stores a row without an account (that no link
    can use), so both answers cost the same."""

    __tablename__ = "password_resets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True, nullable=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LoginFailureRow(Base):
    """One failed login, counted per email (known or not) and per source address."""

    __tablename__ = "login_failures"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class LoginThrottleRow(Base):
    """Per email (known or not, so the answers do not tell them apart): consecutive failures, the
    delay they earned, and the lock after 100."""

    __tablename__ = "login_throttles"
    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    consecutive: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LoginOriginRow(Base):
    """Addresses and devices an account logged in from, so a login from a new one is notified."""

    __tablename__ = "login_origins"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "value", name="uq_login_origins_account_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    """``address`` or ``device`` (a hash of the user agent)."""
    value: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RepudiationRow(Base):
    """The "this wasn't me" link of one security notification: what it revokes."""

    __tablename__ = "repudiations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(40))
    item_kind: Mapped[str] = mapped_column(String(40), default="")
    item_id: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


# -- Account security: second factors, OAuth, step-up, transfers, soft deletion, operators ------------
# (methods in store/security.py; token secrets are stored only as SHA-256, recovery codes as argon2id)


class AccountSecurityRow(Base):
    """An account's role on the platform, its deactivation, and when its MFA grace period started."""

    __tablename__ = "account_security"
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), default="user")
    """``user`` or ``admin`` (a platform operator)."""
    mfa_grace_from: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """Start of the MFA grace period when it is not the account's creation (accounts older than MFA)."""
    deactivated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    deactivated_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class TotpCredentialRow(Base):
    __tablename__ = "totp_credentials"
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """None while enrolment waits for the first code."""
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The last time step whose code was accepted: it and earlier steps are refused."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebAuthnCredentialRow(Base):
    __tablename__ = "webauthn_credentials"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(String(700), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100), default="")
    aaguid: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class RecoveryCodeRow(Base):
    __tablename__ = "recovery_codes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuthChallengeRow(Base):
    """A WebAuthn challenge handed out and not yet answered (single use, short-lived)."""

    __tablename__ = "auth_challenges"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    challenge: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OAuthAuthorizationRow(Base):
    __tablename__ = "oauth_authorizations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    """``login`` (signing in, interactive) or ``authorization`` (long-lived, for automation)."""
    description: Mapped[str] = mapped_column(String(300), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    authenticated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """The last full authentication on this grant (sign-in or step-up): the sudo window's start."""
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_used_ip: Mapped[str] = mapped_column(String(64), default="")


class OAuthTokenRow(Base):
    __tablename__ = "oauth_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    authorization_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_authorizations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    """``access`` or ``refresh``."""
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """Refresh tokens: when it was exchanged (a second exchange is a reuse)."""


class ApiKeyUsageRow(Base):
    """Where and when a legacy ``dky_`` API key was last used, and its last step-up."""

    __tablename__ = "api_key_usage"
    api_key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    last_used_ip: Mapped[str] = mapped_column(String(64), default="")
    authenticated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AppTransferRow(Timestamps, Base):
    __tablename__ = "app_transfers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    sender_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    recipient_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    """``pending``, ``accepted``, ``declined`` or ``cancelled``."""


class AppDeletionRow(Base):
    """A soft-deleted app: hidden and stopped, restorable by its owner until ``purge_at``."""

    __tablename__ = "app_deletions"
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    purge_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    deleted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    formation: Mapped[dict[str, int]] = mapped_column(JSON)
    """Quantities before the deletion, put back by a restore."""
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)


class AppSecurityRow(Base):
    __tablename__ = "app_security"
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    high_profile: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SupportAccessRow(Base):
    """An operator's access to a tenant's app: why, until when; listed to the app's owner."""

    __tablename__ = "support_access"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LogDrainRow(Timestamps, Base):
    """A log drain: the logs process ships the app's stream to ``url``, each line marked with
    ``token`` (``d.<uuid>``)."""

    __tablename__ = "log_drains"
    __table_args__ = (UniqueConstraint("app_id", "url", name="uq_log_drains_app_id_url"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    token: Mapped[str] = mapped_column(String(40), unique=True)


class SniEndpointRow(Timestamps, Base):
    """An app's own TLS certificate (``/apps/{app}/sni-endpoints``). The chain and what was read
    from it live here; the private key does not: it is in ``<data dir>/secrets/sni-endpoints/
    <id>.pem`` (mode 0600) with the chain, where the router reads both."""

    __tablename__ = "sni_endpoints"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)
    certificate_chain: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """Hex SHA-256 of the leaf certificate."""
    cert_domains: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    self_signed: Mapped[bool] = mapped_column(Boolean)
    ca_signed: Mapped[bool] = mapped_column(Boolean)


class RouterSettingsRow(Base):
    """How the router treats one app: response cache, HTTPS redirect, HSTS, connection limit."""

    __tablename__ = "router_settings"
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    cache: Mapped[bool] = mapped_column(Boolean, default=False)
    https_redirect: Mapped[int] = mapped_column(Integer, default=0)
    hsts_max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hsts_include_subdomains: Mapped[bool] = mapped_column(Boolean, default=False)
    hsts_preload: Mapped[bool] = mapped_column(Boolean, default=False)
    connection_limit: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
