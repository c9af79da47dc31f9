"""Evaluation scores per run: each metric on the run's eval split, before and after training.

Revision ID: 0004_scores
Revises: 0003_sink_urls_out
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_scores"
down_revision = "0003_sink_urls_out"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(96), nullable=False),
        sa.Column("before", sa.Float(), nullable=True),
        sa.Column("after", sa.Float(), nullable=True),
        sa.Column("split", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_scores_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_scores")),
        sa.UniqueConstraint("run_id", "name", name="uq_run_scores_run_id_name"),
    )


def downgrade() -> None:
    op.drop_table("run_scores")
