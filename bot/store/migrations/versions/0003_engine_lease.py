"""The engine lease: one engine per database, until several replicas are built properly.

Revision ID: 0003
Revises: 0002
Create Date: 2024-07-01 00:00:00

- ``engine_lease``: one row naming the engine that runs on this database (host, pid, process and
  instance tokens, since when), its last heartbeat and when its lease expires without another.

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "engine_lease",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process", sa.String(32), nullable=False),
        sa.Column("instance", sa.String(32), nullable=False),
        _ts("started_at"),
        _ts("heartbeat_at"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("name", name="pk_engine_lease"),
    )


def downgrade() -> None:
    op.drop_table("engine_lease")
