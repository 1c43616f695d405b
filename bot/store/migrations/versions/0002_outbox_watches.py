"""The outbox, the post-rollback guard watches, and one active deployment per service and env.

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-15 00:00:00

- ``outbox``: effects stored in the transaction of the transition that decided them, until done.
- ``guard_watches``: the QoS guard watching a restored version behind a guard lock.
- ``uq_deployments_service_env_active``: a partial unique index, so that at most one deployment
  per (service, env) is past ``requested`` and not terminal, whatever the replicas race to do.

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_ONE_ACTIVE_WHERE = sa.text(
    "phase NOT IN ('requested', 'succeeded', 'rejected', 'expired', 'cancelled', 'failed', "
    "'rolled_back', 'rollback_failed')"
)


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_index(
        "uq_deployments_service_env_active",
        "deployments",
        ["service", "env"],
        unique=True,
        sqlite_where=_ONE_ACTIVE_WHERE,
        postgresql_where=_ONE_ACTIVE_WHERE,
    )

    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("effect_type", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("done_at", nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("last_failed_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name="fk_outbox_deployment_id_deployments"
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_deployment_id", "outbox", ["deployment_id"])
    op.create_index("ix_outbox_done_at_created_at", "outbox", ["done_at", "created_at"])

    op.create_table(
        "guard_watches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128), nullable=True),
        sa.Column("lock_id", sa.Integer(), nullable=True),
        _ts("started_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("ticks", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("inconclusive", sa.Integer(), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name="fk_guard_watches_deployment_id_deployments"
        ),
        sa.ForeignKeyConstraint(["lock_id"], ["locks.id"], name="fk_guard_watches_lock_id_locks"),
        sa.PrimaryKeyConstraint("id", name="pk_guard_watches"),
    )
    op.create_index("ix_guard_watches_service_env", "guard_watches", ["service", "env"])
    op.create_index("ix_guard_watches_status", "guard_watches", ["status"])


def downgrade() -> None:
    op.drop_index("ix_guard_watches_status", table_name="guard_watches")
    op.drop_index("ix_guard_watches_service_env", table_name="guard_watches")
    op.drop_table("guard_watches")
    op.drop_index("ix_outbox_done_at_created_at", table_name="outbox")
    op.drop_index("ix_outbox_deployment_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("uq_deployments_service_env_active", table_name="deployments")
