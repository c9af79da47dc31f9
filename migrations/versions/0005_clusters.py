"""Runs on Runpod Instant Clusters: the cluster's id and its nodes.

``runs.cluster_id`` is the cluster a ``--nodes`` run rents (indexed: ``recover`` and
``reap`` look runs up by it); ``runs.cluster_nodes`` holds one entry per node (rank, pod
id, SSH address, pinned host key, the rendezvous address it reported). The primary node
(rank 0) is also the run's ``pod_id``/``ssh_host``/``host_key``, so everything that follows
one pod follows rank 0. Single-pod runs leave both empty.

Revision ID: 0005_clusters
Revises: 0003_sink_urls_out
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_clusters"
down_revision = "0004_scores"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cluster_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cluster_nodes", sa.JSON(), nullable=True))
        batch.create_index("ix_runs_cluster_id", ["cluster_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_cluster_id")
        batch.drop_column("cluster_nodes")
        batch.drop_column("cluster_id")
