"""Scale-out: when a job's broker message was last sent, messages sent again, hand-backs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("redispatches", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("handbacks", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("handbacks")
        batch.drop_column("redispatches")
        batch.drop_column("dispatched_at")
