"""Leaderboards: the content hash of a job's dataset (null for jobs uploaded before).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dataset_hash", sa.String(length=64), nullable=True))
        batch.create_index("ix_jobs_dataset_hash", ["dataset_hash"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_dataset_hash")
        batch.drop_column("dataset_hash")
