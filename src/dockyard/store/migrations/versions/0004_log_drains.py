"""Log drains

Revision ID: 0004_log_drains
Revises: 0003
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_log_drains"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_drains",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_log_drains_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_drains")),
        sa.UniqueConstraint("app_id", "url", name="uq_log_drains_app_id_url"),
        sa.UniqueConstraint("token", name=op.f("uq_log_drains_token")),
    )
    with op.batch_alter_table("log_drains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_drains_app_id"), ["app_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("log_drains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_drains_app_id"))
    op.drop_table("log_drains")
