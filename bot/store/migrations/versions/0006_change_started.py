"""When each deployment step's change began, for the guard's ``before`` baseline.

Revision ID: 0006
Revises: 0005
Create Date: 2024-07-15 00:00:00

- ``deployments.change_started_at``: when the current step's change began (entering DEPLOYING for
  it). The guard evaluates ``baseline: before`` (and a promoted canary's baseline) at that moment,
  not when the rollout completed, whose ranges already cover the new pods. Nullable: rows stored
  before it fall back to the window's start.

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("change_started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("change_started_at")
