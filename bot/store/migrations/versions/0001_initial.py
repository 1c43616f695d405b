"""The initial schema: deployments, their events, approvals, locks, audit log, Slack refs, keys.

Revision ID: 0001
Revises:
Create Date: 2024-06-01 00:00:00

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change; a test checks the models still match the migrations.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _to_deployment(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["deployment_id"], ["deployments.id"], name=f"fk_{table}_deployment_id_deployments"
    )


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("version_no", sa.Integer(), nullable=False),
        sa.Column("emergency_reason", sa.Text(), nullable=True),
        sa.Column("is_rollback", sa.Boolean(), nullable=False),
        sa.Column("previous_version", sa.String(128), nullable=True),
        sa.Column("approval_stage", sa.Integer(), nullable=False),
        sa.Column("build_attempt", sa.Integer(), nullable=False),
        sa.Column("build_queue_item", sa.Integer(), nullable=True),
        sa.Column("build_number", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        _ts("guard_started_at", nullable=True),
        sa.Column("guard_ticks", sa.Integer(), nullable=False),
        sa.Column("guard_failed_ticks", sa.Integer(), nullable=False),
        sa.Column("guard_inconclusive_ticks", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
    )
    op.create_index("ix_deployments_service_env_phase", "deployments", ["service", "env", "phase"])
    op.create_index("ix_deployments_service_env_created_at", "deployments", ["service", "env", "created_at"])

    op.create_table(
        "deployment_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("at"),
        _to_deployment("deployment_events"),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_events"),
        sa.UniqueConstraint("deployment_id", "seq", name="uq_deployment_events_deployment_id_seq"),
    )

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("approve", sa.Boolean(), nullable=False),
        _ts("at"),
        sa.Column("reason", sa.Text(), nullable=True),
        _to_deployment("approvals"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint(
            "deployment_id", "stage", "user_id", name="uq_approvals_deployment_id_stage_user_id"
        ),
    )

    op.create_table(
        "locks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("env", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.Column("deployment_id", sa.String(64), nullable=True),
        _ts("released_at", nullable=True),
        sa.Column("released_by", sa.String(64), nullable=True),
        _to_deployment("locks"),
        sa.PrimaryKeyConstraint("id", name="pk_locks"),
    )
    op.create_index("ix_locks_env_released_at", "locks", ["env", "released_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("target", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_target_at", "audit_log", ["target", "at"])

    op.create_table(
        "slack_refs",
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("parent_ts", sa.String(32), nullable=False),
        _to_deployment("slack_refs"),
        sa.PrimaryKeyConstraint("deployment_id", name="pk_slack_refs"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(255), nullable=False),
        _ts("created_at"),
        sa.Column("result", sa.JSON(), nullable=True),
        _ts("completed_at", nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("slack_refs")
    op.drop_index("ix_audit_log_target_at", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_locks_env_released_at", table_name="locks")
    op.drop_table("locks")
    op.drop_table("approvals")
    op.drop_table("deployment_events")
    op.drop_index("ix_deployments_service_env_created_at", table_name="deployments")
    op.drop_index("ix_deployments_service_env_phase", table_name="deployments")
    op.drop_table("deployments")
