"""The router's per-app state: SNI endpoints (apps' own TLS certificates) and router settings

Revision ID: 0004_router
Revises: 0003
Create Date: 2026-12-12 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_router"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sni_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("certificate_chain", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("cert_domains", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("self_signed", sa.Boolean(), nullable=False),
        sa.Column("ca_signed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_sni_endpoints_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sni_endpoints")),
        sa.UniqueConstraint("name", name=op.f("uq_sni_endpoints_name")),
    )
    with op.batch_alter_table("sni_endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sni_endpoints_app_id"), ["app_id"], unique=False)

    op.create_table(
        "router_settings",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("cache", sa.Boolean(), nullable=False),
        sa.Column("https_redirect", sa.Integer(), nullable=False),
        sa.Column("hsts_max_age", sa.Integer(), nullable=True),
        sa.Column("hsts_include_subdomains", sa.Boolean(), nullable=False),
        sa.Column("hsts_preload", sa.Boolean(), nullable=False),
        sa.Column("connection_limit", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_router_settings_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_router_settings")),
    )


def downgrade() -> None:
    op.drop_table("router_settings")
    with op.batch_alter_table("sni_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sni_endpoints_app_id"))
    op.drop_table("sni_endpoints")
