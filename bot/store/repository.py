"""The repository: the one place that turns rows into domain values and back.

The engine works with frozen domain values (``Deployment``, ``Vote``, ``Lock``) and never sees
SQLAlchemy. Every write that must be atomic is one transaction here: a transition updates the
deployment *only if* nobody else changed it since it was read (``version_no``, optimistic
concurrency) and appends its event in the same transaction, so the row and its history never
disagree. "First one wins" writes (votes, idempotency keys) are ``INSERT ... ON CONFLICT DO
NOTHING``, race-safe on SQLite and PostgreSQL alike, and report whether they won.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain.approvals import Vote
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind
from bot.domain.phases import TERMINAL, Phase
from bot.errors import NotFound, PermanentError, TransientError
from bot.store.models import (
    ApprovalRow,
    AuditRow,
    Base,
    DeploymentEventRow,
    DeploymentRow,
    IdempotencyKeyRow,
    LockRow,
    SlackRefRow,
)


class StaleDeployment(TransientError):
    """Someone else changed the deployment since it was read: reload it and decide again."""

    def __init__(self, deployment_id: str, expected_version_no: int) -> None:
        super().__init__(
            f"deployment {deployment_id} changed since version {expected_version_no} was read",
            retry_in=0.0,
        )
        self.deployment_id = deployment_id
        self.expected_version_no = expected_version_no


class DuplicateDeployment(PermanentError):
    """A deployment with this id is already stored (ids come from the caller)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of a deployment's append-only history."""

    deployment_id: str
    seq: int
    """1 for the event that created the deployment, then one more per saved transition."""
    type: str
    payload: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One human action (or refused action): who, what, where, on what, and how it ended."""

    at: datetime
    actor: str
    """Slack user id (or ``shipthread`` for the bot's own actions on a person's behalf)."""
    action: str
    """E.g. ``deploy``, ``approve``, ``reject``, ``rollback``, ``lock``, ``unlock``."""
    outcome: str
    """E.g. ``ok``, ``refused``, ``failed``: what became of it."""
    channel: str | None = None
    target: str | None = None
    """A deployment id, ``env`` or ``env/service`` for locks: what ``audit_entries(target=)`` finds."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class SlackRef:
    """Where a deployment's Slack thread lives."""

    deployment_id: str
    channel: str
    parent_ts: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An idempotency key: claimed at ``created_at``; ``completed_at`` and ``result`` once done."""

    key: str
    created_at: datetime
    result: Mapping[str, Any] | None
    completed_at: datetime | None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None


_DEPLOYMENT_FIELDS = tuple(f.name for f in dataclasses.fields(Deployment))
_NON_TERMINAL = sorted(p.value for p in Phase if p not in TERMINAL)


def _deployment_values(dep: Deployment) -> dict[str, Any]:
    values = {name: getattr(dep, name) for name in _DEPLOYMENT_FIELDS}
    values["phase"] = dep.phase.value
    values["strategy"] = dep.strategy.value
    return values


def _to_deployment(row: DeploymentRow) -> Deployment:
    values = {name: getattr(row, name) for name in _DEPLOYMENT_FIELDS}
    values["phase"] = Phase(row.phase)
    values["strategy"] = Strategy(row.strategy)
    return Deployment(**values)


def _to_vote(row: ApprovalRow) -> Vote:
    return Vote(
        deployment_id=row.deployment_id,
        stage=row.stage,
        user=row.user_id,
        approve=row.approve,
        at=row.at,
        reason=row.reason,
    )


def _to_lock(row: LockRow) -> Lock:
    return Lock(
        id=row.id,
        env=row.env,
        service=row.service,
        kind=LockKind(row.kind),
        reason=row.reason,
        author=row.author,
        created_at=row.created_at,
        deployment_id=row.deployment_id,
        released_at=row.released_at,
        released_by=row.released_by,
    )


def _to_audit(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        channel=row.channel,
        target=row.target,
        outcome=row.outcome,
        detail=row.detail,
    )


def _insert(session: AsyncSession, entity: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's own INSERT, which has ``on_conflict_do_nothing``/``do_update``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(entity)
    if dialect == "sqlite":
        return sqlite.insert(entity)
    raise PermanentError(f"the store does not support the {dialect} database")  # pragma: no cover


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


class Repository:
    """Async access to the store over one ``AsyncEngine``. Safe to share; each call is a transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # -- deployments ------------------------------------------------------------------------------

    async def create_deployment(
        self, dep: Deployment, event_type: str, event_payload: Mapping[str, Any]
    ) -> Deployment:
        """Store a new deployment and its first event (``seq`` 1, at ``dep.created_at``), atomically.

        Raises ``DuplicateDeployment`` if the id is taken; nothing is written then.
        """
        async with self._sessions.begin() as session:
            inserted = await session.execute(
                _insert(session, DeploymentRow)
                .values(**_deployment_values(dep))
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(DeploymentRow.id)
            )
            if inserted.first() is None:
                raise DuplicateDeployment(f"a deployment with id {dep.id} already exists")
            session.add(
                DeploymentEventRow(
                    deployment_id=dep.id,
                    seq=1,
                    type=event_type,
                    payload=dict(event_payload),
                    at=dep.created_at,
                )
            )
        return dep

    async def get_deployment(self, deployment_id: str) -> Deployment | None:
        async with self._sessions() as session:
            row = await session.get(DeploymentRow, deployment_id)
            return None if row is None else _to_deployment(row)

    async def save_transition(
        self,
        new_dep: Deployment,
        expected_version_no: int,
        event_type: str,
        event_payload: Mapping[str, Any],
        at: datetime,
    ) -> Deployment:
        """Write ``new_dep`` and append its event, if the stored row is still at ``expected_version_no``.

        The stored ``version_no`` becomes ``expected_version_no + 1`` whatever ``new_dep`` carries
        (``Deployment.with_phase`` already does this), and the stored value is returned. Raises
        ``StaleDeployment`` when another writer got there first (or the deployment is gone); nothing
        is written then. Two concurrent calls with the same expected version: exactly one wins.
        """
        stored = dataclasses.replace(new_dep, version_no=expected_version_no + 1)
        values = _deployment_values(stored)
        del values["id"]
        async with self._sessions.begin() as session:
            # The UPDATE comes first: it takes the row lock (PostgreSQL) or the write lock (SQLite),
            # so the seq computed below cannot race with another writer of this deployment.
            result = await session.execute(
                update(DeploymentRow)
                .where(DeploymentRow.id == new_dep.id, DeploymentRow.version_no == expected_version_no)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                raise StaleDeployment(new_dep.id, expected_version_no)
            last_seq = await session.scalar(
                select(func.coalesce(func.max(DeploymentEventRow.seq), 0)).where(
                    DeploymentEventRow.deployment_id == new_dep.id
                )
            )
            session.add(
                DeploymentEventRow(
                    deployment_id=new_dep.id,
                    seq=int(last_seq or 0) + 1,
                    type=event_type,
                    payload=dict(event_payload),
                    at=at,
                )
            )
        return stored

    async def events_for(self, deployment_id: str) -> list[StoredEvent]:
        """The deployment's history, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(DeploymentEventRow)
                .where(DeploymentEventRow.deployment_id == deployment_id)
                .order_by(DeploymentEventRow.seq)
            )
            return [
                StoredEvent(deployment_id=r.deployment_id, seq=r.seq, type=r.type, payload=r.payload, at=r.at)
                for r in rows
            ]

    async def active_deployments(
        self, service: str | None = None, env: str | None = None
    ) -> list[Deployment]:
        """Deployments not yet in a terminal phase, oldest first (what a restart must resume)."""
        query = select(DeploymentRow).where(DeploymentRow.phase.in_(_NON_TERMINAL))
        return await self._deployments(self._filtered(query, service, env).order_by(DeploymentRow.created_at))

    async def history(self, service: str | None, env: str | None = None, limit: int = 20) -> list[Deployment]:
        """The latest ``limit`` deployments of ``service`` (all services when None), newest first."""
        query = self._filtered(select(DeploymentRow), service, env)
        return await self._deployments(
            query.order_by(DeploymentRow.created_at.desc(), DeploymentRow.id.desc()).limit(limit)
        )

    async def last_succeeded(self, service: str, env: str) -> Deployment | None:
        """The deployment that most recently finished ``succeeded``: what should be live now."""
        query = self._filtered(select(DeploymentRow), service, env).where(
            DeploymentRow.phase == Phase.SUCCEEDED.value
        )
        found = await self._deployments(
            query.order_by(DeploymentRow.updated_at.desc(), DeploymentRow.created_at.desc()).limit(1)
        )
        return found[0] if found else None

    @staticmethod
    def _filtered(
        query: Select[DeploymentRow], service: str | None, env: str | None
    ) -> Select[DeploymentRow]:
        if service is not None:
            query = query.where(DeploymentRow.service == service)
        if env is not None:
            query = query.where(DeploymentRow.env == env)
        return query

    async def _deployments(self, query: Select[DeploymentRow]) -> list[Deployment]:
        async with self._sessions() as session:
            return [_to_deployment(row) for row in await session.scalars(query)]

    # -- approvals --------------------------------------------------------------------------------

    async def add_vote(self, vote: Vote) -> bool:
        """Record a vote; False (and nothing written) if this user already voted at this stage.

        Raises ``NotFound`` if the deployment does not exist.
        """
        try:
            async with self._sessions.begin() as session:
                inserted = await session.execute(
                    _insert(session, ApprovalRow)
                    .values(
                        deployment_id=vote.deployment_id,
                        stage=vote.stage,
                        user_id=vote.user,
                        approve=vote.approve,
                        at=vote.at,
                        reason=vote.reason,
                    )
                    .on_conflict_do_nothing(index_elements=["deployment_id", "stage", "user_id"])
                    .returning(ApprovalRow.id)
                )
                return inserted.first() is not None
        except IntegrityError as exc:  # only the foreign key is left to violate
            raise NotFound(f"deployment {vote.deployment_id} not found") from exc

    async def votes_for(self, deployment_id: str) -> list[Vote]:
        """Every vote on the deployment, in the order they were cast."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ApprovalRow)
                .where(ApprovalRow.deployment_id == deployment_id)
                .order_by(ApprovalRow.at, ApprovalRow.id)
            )
            return [_to_vote(row) for row in rows]

    # -- locks ------------------------------------------------------------------------------------

    async def add_lock(self, lock: Lock) -> Lock:
        """Store a lock; returns it with its new ``id`` (any id given is ignored)."""
        row = LockRow(
            env=lock.env,
            service=lock.service,
            kind=lock.kind.value,
            reason=lock.reason,
            author=lock.author,
            created_at=lock.created_at,
            deployment_id=lock.deployment_id,
            released_at=lock.released_at,
            released_by=lock.released_by,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                return _to_lock(row)
        except IntegrityError as exc:
            raise NotFound(f"deployment {lock.deployment_id} not found") from exc

    async def release_lock(self, lock_id: int, by: str, at: datetime) -> bool:
        """Release a held lock; False if there is no such lock or it was already released."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(LockRow)
                .where(LockRow.id == lock_id, LockRow.released_at.is_(None))
                .values(released_at=at, released_by=by)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def get_lock(self, lock_id: int) -> Lock | None:
        async with self._sessions() as session:
            row = await session.get(LockRow, lock_id)
            return None if row is None else _to_lock(row)

    async def active_locks(self, env: str | None = None) -> list[Lock]:
        """Locks not yet released (of ``env``, or all), oldest first."""
        query = select(LockRow).where(LockRow.released_at.is_(None))
        if env is not None:
            query = query.where(LockRow.env == env)
        async with self._sessions() as session:
            return [
                _to_lock(row) for row in await session.scalars(query.order_by(LockRow.created_at, LockRow.id))
            ]

    # -- audit ------------------------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Append to the audit log; returns the entry with its ``id``."""
        row = AuditRow(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            channel=entry.channel,
            target=entry.target,
            outcome=entry.outcome,
            detail=dict(entry.detail),
        )
        async with self._sessions.begin() as session:
            session.add(row)
            await session.flush()
            return _to_audit(row)

    async def audit_entries(self, limit: int = 50, target: str | None = None) -> list[AuditEntry]:
        """The latest ``limit`` audit entries (about ``target``, or all), newest first."""
        query = select(AuditRow)
        if target is not None:
            query = query.where(AuditRow.target == target)
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(AuditRow.at.desc(), AuditRow.id.desc()).limit(limit))
            return [_to_audit(row) for row in rows]

    # -- slack threads ----------------------------------------------------------------------------

    async def set_slack_ref(self, deployment_id: str, channel: str, parent_ts: str) -> None:
        """Remember (or move) the deployment's thread. Raises ``NotFound`` for an unknown deployment."""
        try:
            async with self._sessions.begin() as session:
                stmt = _insert(session, SlackRefRow).values(
                    deployment_id=deployment_id, channel=channel, parent_ts=parent_ts
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["deployment_id"], set_={"channel": channel, "parent_ts": parent_ts}
                    )
                )
        except IntegrityError as exc:
            raise NotFound(f"deployment {deployment_id} not found") from exc

    async def get_slack_ref(self, deployment_id: str) -> SlackRef | None:
        async with self._sessions() as session:
            row = await session.get(SlackRefRow, deployment_id)
            return None if row is None else SlackRef(row.deployment_id, row.channel, row.parent_ts)

    # -- idempotency keys -------------------------------------------------------------------------

    async def claim_key(self, key: str, at: datetime) -> bool:
        """Claim ``key``: True for the first claimer only, also under concurrent claims and replicas."""
        async with self._sessions.begin() as session:
            inserted = await session.execute(
                _insert(session, IdempotencyKeyRow)
                .values(key=key, created_at=at, result=None, completed_at=None)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(IdempotencyKeyRow.key)
            )
            return inserted.first() is not None

    async def complete_key(self, key: str, result: Mapping[str, Any], at: datetime) -> None:
        """Record what the work done under ``key`` produced (claiming it too, if nobody had)."""
        async with self._sessions.begin() as session:
            stmt = _insert(session, IdempotencyKeyRow).values(
                key=key, created_at=at, result=dict(result), completed_at=at
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"], set_={"result": stmt.excluded.result, "completed_at": at}
                )
            )

    async def release_key(self, key: str) -> bool:
        """Give up a claim that was never completed (the work failed), so a retry may claim it again.

        False if the key is unknown or already completed: a completed key is never released.
        """
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(IdempotencyKeyRow)
                .where(IdempotencyKeyRow.key == key, IdempotencyKeyRow.completed_at.is_(None))
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    async def get_key(self, key: str) -> KeyRecord | None:
        async with self._sessions() as session:
            row = await session.get(IdempotencyKeyRow, key)
            if row is None:
                return None
            return KeyRecord(
                key=row.key, created_at=row.created_at, result=row.result, completed_at=row.completed_at
            )
