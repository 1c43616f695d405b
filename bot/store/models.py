"""The tables of the store, as SQLAlchemy 2 declarative models.

The models are the store's private shape: the repository maps them to and from the domain's frozen
values, so nothing outside ``bot.store`` sees a row. ``versions/0001_initial.py`` creates exactly
these tables, and a test compares the two with Alembic's autogenerate on SQLite and PostgreSQL.

Enum-like values (phase, strategy, lock kind) are stored as plain strings, not native enums, so a new
phase is a code change rather than an ``ALTER TYPE`` migration. Every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so that later migrations (and SQLite's batch mode) can refer to them."""

ID = 64
NAME = 128


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the offset (``timestamptz``); SQLite keeps none and would hand back naive
    values. So a naive datetime is refused on the way in (it is a bug: time is always UTC-aware
    here), values are stored in UTC, and UTC is attached on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; pass an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


NOT_EXCLUSIVE_PHASES = (
    "requested",
    "succeeded",
    "rejected",
    "expired",
    "cancelled",
    "failed",
    "rolled_back",
    "rollback_failed",
)
"""Phases that do not hold their service and environment: queued (``requested``) and terminal ones.

Written out rather than derived from ``bot.domain.phases`` because the index built from it lives in
a migration: a new phase must come with a new migration, and a test says so when they drift.
"""

ONE_ACTIVE_INDEX = "uq_deployments_service_env_active"
_HAS_DUE = text("due_at IS NOT NULL")
"""Only rows with a due time are indexed by it: the unfinished ones the timer takes from."""
_ONE_ACTIVE_WHERE = text("phase NOT IN ({})".format(", ".join(f"'{p}'" for p in NOT_EXCLUSIVE_PHASES)))


class DeploymentRow(Base):
    """One deployment: a column per field of ``bot.domain.deployment.Deployment``.

    At most one deployment per (service, env) may be past ``requested`` and not yet terminal: the
    engine queues further requests as ``requested``, and the database enforces the rest, so two
    replicas (or two clicks) can never start two rollouts of the same service in one environment.
    """

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_service_env_phase", "service", "env", "phase"),
        Index("ix_deployments_service_env_created_at", "service", "env", "created_at"),
        Index(
            ONE_ACTIVE_INDEX,
            "service",
            "env",
            unique=True,
            sqlite_where=_ONE_ACTIVE_WHERE,
            postgresql_where=_ONE_ACTIVE_WHERE,
        ),
        Index("ix_deployments_due_at", "due_at", sqlite_where=_HAS_DUE, postgresql_where=_HAS_DUE),
    )

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    service: Mapped[str] = mapped_column(String(NAME))
    env: Mapped[str] = mapped_column(String(ID))
    version: Mapped[str] = mapped_column(String(NAME))
    strategy: Mapped[str] = mapped_column(String(32))
    requester: Mapped[str] = mapped_column(String(ID))
    phase: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version_no: Mapped[int] = mapped_column(Integer)
    emergency_reason: Mapped[str | None] = mapped_column(Text)
    is_rollback: Mapped[bool] = mapped_column(Boolean)
    previous_version: Mapped[str | None] = mapped_column(String(NAME))
    approval_stage: Mapped[int] = mapped_column(Integer)
    build_attempt: Mapped[int] = mapped_column(Integer)
    build_queue_item: Mapped[int | None] = mapped_column(Integer)
    build_number: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    change_started_at: Mapped[datetime | None]
    guard_started_at: Mapped[datetime | None]
    guard_ticks: Mapped[int] = mapped_column(Integer)
    guard_failed_ticks: Mapped[int] = mapped_column(Integer)
    guard_inconclusive_ticks: Mapped[int] = mapped_column(Integer)
    paused: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    """When the engine's timer next looks at it (``bot.domain.due``); NULL: only an event moves it."""


class DeploymentEventRow(Base):
    """Append-only history of one deployment: what happened, in order (``seq`` from 1)."""

    __tablename__ = "deployment_events"
    __table_args__ = (UniqueConstraint("deployment_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(ID), ForeignKey("deployments.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(NAME))
    payload: Mapped[dict[str, Any]]
    at: Mapped[datetime]


class ApprovalRow(Base):
    """One approve or reject vote; a person votes at most once per stage of a deployment."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("deployment_id", "stage", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(ID), ForeignKey("deployments.id"))
    stage: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(ID))
    approve: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)


class LockRow(Base):
    """A manual or guard lock; released locks stay, for the record."""

    __tablename__ = "locks"
    __table_args__ = (Index("ix_locks_env_released_at", "env", "released_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    env: Mapped[str] = mapped_column(String(ID))
    service: Mapped[str | None] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(ID))
    created_at: Mapped[datetime]
    deployment_id: Mapped[str | None] = mapped_column(String(ID), ForeignKey("deployments.id"))
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(ID))


class AuditRow(Base):
    """Every human action (and every refusal of one), who did it, where, to what, and how it ended."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target_at", "target", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(ID))
    action: Mapped[str] = mapped_column(String(NAME))
    channel: Mapped[str | None] = mapped_column(String(ID))
    target: Mapped[str | None] = mapped_column(String(NAME))
    outcome: Mapped[str] = mapped_column(String(NAME))
    detail: Mapped[dict[str, Any]]


class SlackRefRow(Base):
    """Where a deployment's thread lives: the parent message every reply hangs under."""

    __tablename__ = "slack_refs"

    deployment_id: Mapped[str] = mapped_column(String(ID), ForeignKey("deployments.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(ID))
    parent_ts: Mapped[str] = mapped_column(String(32))


class IdempotencyKeyRow(Base):
    """A claimed piece of work (an effect, a Slack request): the first claimer runs it, others skip."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime]
    result: Mapped[dict[str, Any] | None]
    completed_at: Mapped[datetime | None]


class OutboxRow(Base):
    """An effect a transition decided on, stored in the same transaction, until it has been done.

    ``key`` is the effect's idempotency key: the same effect is never queued twice. ``seq`` keeps
    the order the effects were decided in (several share one ``created_at``).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_done_at_created_at", "done_at", "created_at"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    deployment_id: Mapped[str] = mapped_column(String(ID), ForeignKey("deployments.id"), index=True)
    effect_type: Mapped[str] = mapped_column(String(NAME))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failed_at: Mapped[datetime | None]


class GuardWatchRow(Base):
    """A post-rollback watch (``bot.domain.watch.GuardWatch``): the guard looking after a rollback."""

    __tablename__ = "guard_watches"
    __table_args__ = (
        Index("ix_guard_watches_service_env", "service", "env"),
        Index("ix_guard_watches_due_at", "due_at", sqlite_where=_HAS_DUE, postgresql_where=_HAS_DUE),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(String(ID), ForeignKey("deployments.id"))
    service: Mapped[str] = mapped_column(String(NAME))
    env: Mapped[str] = mapped_column(String(ID))
    version: Mapped[str | None] = mapped_column(String(NAME))
    lock_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("locks.id"))
    started_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)
    windows: Mapped[int] = mapped_column(Integer)
    ticks: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    inconclusive: Mapped[int] = mapped_column(Integer)
    last_reason: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    """When its next tick (or settling notice) is due; NULL once it ended."""


ENGINE_LEASE = "engine"
"""The name of the one lease row (``bot.domain.lease``): one engine per database."""


class EngineLeaseRow(Base):
    """Which engine runs on this database, and until when it holds it without another heartbeat."""

    __tablename__ = "engine_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    boot_id: Mapped[str | None] = mapped_column(String(64))
    """The holder's kernel boot id: with ``pid_namespace``, whether its pids are ours to look up."""
    pid_namespace: Mapped[int | None] = mapped_column(BigInteger)
    """The inode of the holder's PID namespace (larger than 2**31: a ``BIGINT``)."""
    pid: Mapped[int] = mapped_column(Integer)
    process: Mapped[str] = mapped_column(String(32))
    instance: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class SlackThreadRow(Base):
    """A deployment's Slack thread, or one channel's top-level posts: where it goes, its card's state.

    ``thread_id`` is the deployment id, or ``channel:<channel>`` for posts outside any deployment
    (a lock of a whole environment) — which is why it has no foreign key to ``deployments``. The
    parent's ``ts`` is the ``ts`` of the thread's top-level message (key ``card``) in
    ``slack_messages``, kept there only. ``channel`` is as configured (``#name`` or an id).
    """

    __tablename__ = "slack_threads"

    thread_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    channel: Mapped[str] = mapped_column(String(NAME))
    channel_id: Mapped[str | None] = mapped_column(String(ID))
    """The channel's id, once the thread's first message is posted (``channel`` may be a name)."""
    card_state: Mapped[dict[str, Any] | None]
    next_seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class SlackMessageRow(Base):
    """One message of a thread, by its renderer key: what it should say, and what Slack has.

    ``revision`` counts the desired contents; ``sent_revision`` the one Slack shows (0: not
    posted). ``attempted_at`` is set before each ``chat.postMessage``, so a post whose answer was
    lost (a crash, a timeout) is looked up in Slack by its metadata before being posted again.
    ``pending`` is true while Slack is behind and not stopped by a permanent ``error``.
    """

    __tablename__ = "slack_messages"
    __table_args__ = (
        UniqueConstraint("thread_id", "key"),
        Index("ix_slack_messages_pending_since", "pending", "pending_since"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[str] = mapped_column(String(NAME), ForeignKey("slack_threads.thread_id"))
    key: Mapped[str] = mapped_column(String(255))
    seq: Mapped[int] = mapped_column(Integer)
    top_level: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    blocks: Mapped[list[Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer)
    sent_revision: Mapped[int] = mapped_column(Integer)
    ts: Mapped[str | None] = mapped_column(String(32))
    attempted_at: Mapped[datetime | None]
    pending: Mapped[bool] = mapped_column(Boolean)
    pending_since: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
