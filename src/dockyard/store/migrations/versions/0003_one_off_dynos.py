"""One-off dynos (their desired state) and the next retry time of crashed dynos

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "one_off_dynos",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=140), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("size", sa.String(length=40), nullable=False),
        sa.Column("attach", sa.Boolean(), nullable=False),
        sa.Column("tty", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("time_to_live", sa.Integer(), nullable=False),
        sa.Column("release_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_one_off_dynos_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_one_off_dynos")),
    )
    with op.batch_alter_table("one_off_dynos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_one_off_dynos_app_id"), ["app_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_one_off_dynos_state"), ["state"], unique=False)

    with op.batch_alter_table("dynos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dynos", schema=None) as batch_op:
        batch_op.drop_column("next_retry_at")

    with op.batch_alter_table("one_off_dynos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_one_off_dynos_state"))
        batch_op.drop_index(batch_op.f("ix_one_off_dynos_app_id"))

    op.drop_table("one_off_dynos")
