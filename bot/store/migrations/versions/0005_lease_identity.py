"""The engine lease knows where its holder's pids mean something: kernel boot and PID namespace.

Revision ID: 0005
Revises: 0004
Create Date: 2024-07-15 00:00:00

- ``engine_lease.boot_id``: the holder's kernel boot id; ``engine_lease.pid_namespace``: the inode
  of its PID namespace. A host name alone let a second container with ``--network host`` (same
  name, its own PID namespace, pid 1 too) take the lease from a live engine. Both are nullable: a row
  written before this revision, or on a system without ``/proc``, has them unknown, and an unknown
  holder is only taken over once its lease expires (``bot.domain.lease``).

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("engine_lease") as batch:
        batch.add_column(sa.Column("boot_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("pid_namespace", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engine_lease") as batch:
        batch.drop_column("pid_namespace")
        batch.drop_column("boot_id")
