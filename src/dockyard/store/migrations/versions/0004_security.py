"""Account security: roles and deactivation, TOTP, WebAuthn, recovery codes, challenges, OAuth authorizations
and tokens, API key usage, app transfers, soft deletions, high-profile apps, support access

Revision ID: 0004_security
Revises: 0003
Create Date: 2026-12-10 12:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004_security"
down_revision = "0003"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def _index(table: str, column: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def _when(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    account_security = op.create_table(
        "account_security",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        _when("mfa_grace_from", nullable=True),
        _when("deactivated_at", nullable=True),
        sa.Column("deactivated_by", sa.String(length=36), nullable=True),
        _fk("account_security", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_security")),
    )
    op.create_table(
        "totp_credentials",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        _when("confirmed_at", nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        _when("created_at"),
        _fk("totp_credentials", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_totp_credentials")),
    )
    op.create_table(
        "webauthn_credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("credential_id", sa.String(length=700), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("aaguid", sa.String(length=32), nullable=False),
        _when("created_at"),
        _when("last_used_at", nullable=True),
        _fk("webauthn_credentials", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webauthn_credentials")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_webauthn_credentials_credential_id")),
    )
    _index("webauthn_credentials", "account_id")
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        _when("created_at"),
        _when("used_at", nullable=True),
        _fk("recovery_codes", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    _index("recovery_codes", "account_id")
    op.create_table(
        "auth_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("challenge", sa.String(length=100), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _fk("auth_challenges", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_challenges")),
        sa.UniqueConstraint("challenge", name=op.f("uq_auth_challenges_challenge")),
    )
    _index("auth_challenges", "account_id")
    op.create_table(
        "oauth_authorizations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("expires_at", nullable=True),
        _when("revoked_at", nullable=True),
        _when("authenticated_at", nullable=True),
        _when("last_used_at", nullable=True),
        sa.Column("last_used_ip", sa.String(length=64), nullable=False),
        _fk("oauth_authorizations", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorizations")),
    )
    _index("oauth_authorizations", "account_id")
    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("authorization_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _when("created_at"),
        _when("expires_at", nullable=True),
        _when("used_at", nullable=True),
        _fk("oauth_tokens", "authorization_id", "oauth_authorizations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oauth_tokens_token_hash")),
    )
    _index("oauth_tokens", "authorization_id")
    op.create_table(
        "api_key_usage",
        sa.Column("api_key_id", sa.String(length=36), nullable=False),
        sa.Column("last_used_ip", sa.String(length=64), nullable=False),
        _when("authenticated_at", nullable=True),
        _fk("api_key_usage", "api_key_id", "api_keys"),
        sa.PrimaryKeyConstraint("api_key_id", name=op.f("pk_api_key_usage")),
    )
    op.create_table(
        "app_transfers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("sender_id", sa.String(length=36), nullable=False),
        sa.Column("recipient_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _fk("app_transfers", "app_id", "apps"),
        _fk("app_transfers", "sender_id", "accounts"),
        _fk("app_transfers", "recipient_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_transfers")),
    )
    _index("app_transfers", "app_id")
    _index("app_transfers", "recipient_id")
    op.create_table(
        "app_deletions",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        _when("deleted_at"),
        _when("purge_at"),
        sa.Column("deleted_by", sa.String(length=36), nullable=True),
        sa.Column("formation", sa.JSON(), nullable=False),
        sa.Column("maintenance", sa.Boolean(), nullable=False),
        _fk("app_deletions", "app_id", "apps"),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_app_deletions")),
    )
    _index("app_deletions", "purge_at")
    op.create_table(
        "app_security",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("high_profile", sa.Boolean(), nullable=False),
        _when("updated_at"),
        _fk("app_security", "app_id", "apps"),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_app_security")),
    )
    op.create_table(
        "support_access",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("operator_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _fk("support_access", "app_id", "apps"),
        _fk("support_access", "operator_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_access")),
    )
    _index("support_access", "app_id")
    # Accounts made before MFA existed get their grace period from now, not from their creation.
    accounts = sa.table("accounts", sa.column("id", sa.String))
    existing = [row[0] for row in op.get_bind().execute(sa.select(accounts.c.id))]
    if existing:
        now = datetime.now(UTC)
        if op.get_bind().dialect.name == "sqlite":
            now = now.replace(tzinfo=None)  # as UtcDateTime stores it there
        op.bulk_insert(
            account_security,
            [
                {"account_id": account_id, "role": "user", "mfa_grace_from": now}
                for account_id in existing
            ],
        )


def downgrade() -> None:
    for table in (
        "support_access",
        "app_security",
        "app_deletions",
        "app_transfers",
        "api_key_usage",
        "oauth_tokens",
        "oauth_authorizations",
        "auth_challenges",
        "recovery_codes",
        "webauthn_credentials",
        "totp_credentials",
        "account_security",
    ):
        op.drop_table(table)
