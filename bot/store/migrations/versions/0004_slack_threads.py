"""Slack thread state: each deployment's thread and each message's desired and posted content.

Revision ID: 0004
Revises: 0003
Create Date: 2024-07-08 00:00:00

- ``slack_threads``: per deployment (or ``channel:<id>`` for top-level posts) the channel and the
  card's state, and the next sequence number (thread order).
- ``slack_messages``: per (thread, key) the content to show, its revision, the revision Slack
  shows, its ``ts``, and whether a post was attempted (looked up before posting again).

Written out in full (not imported from ``bot.store.models``) so that it stays what it was when the
models change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "slack_threads",
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=True),
        sa.Column("card_state", sa.JSON(), nullable=True),
        sa.Column("next_seq", sa.Integer(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("thread_id", name="pk_slack_threads"),
    )
    op.create_table(
        "slack_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("top_level", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("sent_revision", sa.Integer(), nullable=False),
        sa.Column("ts", sa.String(32), nullable=True),
        _ts("attempted_at", nullable=True),
        sa.Column("pending", sa.Boolean(), nullable=False),
        _ts("pending_since", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["slack_threads.thread_id"], name="fk_slack_messages_thread_id_slack_threads"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_slack_messages"),
        sa.UniqueConstraint("thread_id", "key", name="uq_slack_messages_thread_id_key"),
    )
    op.create_index("ix_slack_messages_pending_since", "slack_messages", ["pending", "pending_since"])


def downgrade() -> None:
    op.drop_index("ix_slack_messages_pending_since", table_name="slack_messages")
    op.drop_table("slack_messages")
    op.drop_table("slack_threads")
