"""When each deployment and each guard watch next needs the engine: time as data.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:00:00

- ``deployments.due_at`` and ``guard_watches.due_at``: the instant the engine's one timer next
  looks at the row (a build or rollout to poll, an approval to expire, a guard tick;
  ``bot.domain.due``). NULL when only an event can move it (queued, paused, finished).
- ``ix_deployments_due_at`` and ``ix_guard_watches_due_at``: partial indexes over the rows that
  have a due time (the unfinished ones), so taking what is due reads only those.

Rows stored before this revision that are still in flight are made due at once: the engine looks
at each once after the upgrade and stores its real due time then, so nothing is lost or skipped.

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_IN_FLIGHT = ("awaiting_approval", "building", "deploying", "verifying", "rolling_back")
_HAS_DUE = sa.text("due_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("guard_watches") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    deployments = sa.table(
        "deployments",
        sa.column("due_at", sa.DateTime(timezone=True)),
        sa.column("updated_at"),
        sa.column("phase"),
    )
    op.execute(
        deployments.update()
        .where(deployments.c.phase.in_(_IN_FLIGHT))
        .values(due_at=deployments.c.updated_at)
    )
    watches = sa.table(
        "guard_watches",
        sa.column("due_at", sa.DateTime(timezone=True)),
        sa.column("started_at"),
        sa.column("status"),
    )
    op.execute(watches.update().where(watches.c.status == "watching").values(due_at=watches.c.started_at))
    op.create_index(
        "ix_deployments_due_at", "deployments", ["due_at"], sqlite_where=_HAS_DUE, postgresql_where=_HAS_DUE
    )
    op.create_index(
        "ix_guard_watches_due_at",
        "guard_watches",
        ["due_at"],
        sqlite_where=_HAS_DUE,
        postgresql_where=_HAS_DUE,
    )


def downgrade() -> None:
    op.drop_index("ix_guard_watches_due_at", table_name="guard_watches")
    op.drop_index("ix_deployments_due_at", table_name="deployments")
    with op.batch_alter_table("guard_watches") as batch:
        batch.drop_column("due_at")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("due_at")
