"""The repository: the one place that turns rows into domain values and back.

The engine works with frozen domain values (``Deployment``, ``Vote``, ``Lock``, ``GuardWatch``)
and never sees SQLAlchemy; ``Repository`` is the engine's ``bot.ports.Store``. Every write that
must be atomic is one transaction here: a transition updates the deployment *only if* nobody else
changed it since it was read (``version_no``, optimistic concurrency), appends its event and queues
its effects in the outbox in the same transaction, so the row, its history and the work it still
owes never disagree (a crash after the commit leaves the effects pending, to be run on restart).
"First one wins" writes (votes, idempotency keys, outbox keys) are ``INSERT ... ON CONFLICT DO
NOTHING``, race-safe on SQLite and PostgreSQL alike, and report whether they won.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain.approvals import Vote
from bot.domain.audit import AuditEntry
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind
from bot.domain.phases import TERMINAL, Phase
from bot.domain.redact import Redactor
from bot.domain.watch import GuardWatch, WatchStatus
from bot.errors import NotFound, TransientError
from bot.ports import DuplicateDeployment, PendingEffect, Store, StoredEvent
from bot.store import sql
from bot.store.models import (
    NAME,
    ONE_ACTIVE_INDEX,
    ApprovalRow,
    AuditRow,
    DeploymentEventRow,
    DeploymentRow,
    GuardWatchRow,
    IdempotencyKeyRow,
    LockRow,
    OutboxRow,
    SlackRefRow,
)

__all__ = [
    "AuditEntry",
    "Busy",
    "DuplicateDeployment",
    "KeyRecord",
    "OutboxEntry",
    "Repository",
    "SlackRef",
    "StaleDeployment",
    "StoredEvent",
]


class StaleDeployment(TransientError):
    """Someone else changed the deployment since it was read: reload it and decide again."""

    def __init__(self, deployment_id: str, expected_version_no: int) -> None:
        super().__init__(
            f"deployment {deployment_id} changed since version {expected_version_no} was read",
            retry_in=0.0,
        )
        self.deployment_id = deployment_id
        self.expected_version_no = expected_version_no


class Busy(TransientError):
    """Another deployment of the same service already holds the environment: wait for it to end.

    At most one deployment per (service, env) is past ``requested`` and not terminal; the engine
    keeps further requests queued as ``requested`` and tries again once the active one is done.
    """

    def __init__(self, service: str, env: str, deployment_id: str) -> None:
        super().__init__(f"{service} already has an active deployment in {env}", retry_in=5.0)
        self.service = service
        self.env = env
        self.deployment_id = deployment_id


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


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An outbox effect with its delivery record: how often it failed, and the last reason why."""

    effect: PendingEffect
    attempts: int
    last_error: str | None
    last_failed_at: datetime | None


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


def _to_effect(row: OutboxRow) -> PendingEffect:
    return PendingEffect(
        key=row.key,
        deployment_id=row.deployment_id,
        effect_type=row.effect_type,
        payload=row.payload,
        created_at=row.created_at,
        done_at=row.done_at,
    )


def _watch_values(watch: GuardWatch) -> dict[str, Any]:
    return {
        "deployment_id": watch.deployment_id,
        "service": watch.service,
        "env": watch.env,
        "version": watch.version,
        "lock_id": watch.lock_id,
        "started_at": watch.started_at,
        "status": watch.status.value,
        "windows": watch.windows,
        "ticks": watch.ticks,
        "failed": watch.failed,
        "inconclusive": watch.inconclusive,
        "last_reason": watch.last_reason,
    }


def _to_watch(row: GuardWatchRow) -> GuardWatch:
    return GuardWatch(
        id=row.id,
        deployment_id=row.deployment_id,
        service=row.service,
        env=row.env,
        version=row.version,
        lock_id=row.lock_id,
        started_at=row.started_at,
        status=WatchStatus(row.status),
        windows=row.windows,
        ticks=row.ticks,
        failed=row.failed,
        inconclusive=row.inconclusive,
        last_reason=row.last_reason,
    )


def _violates_one_active(exc: IntegrityError) -> bool:
    """True when ``exc`` is the one-active-deployment index refusing a row (not another constraint)."""
    message = str(exc.orig)
    # PostgreSQL names the index; SQLite names the indexed columns.
    return ONE_ACTIVE_INDEX in message or "deployments.service, deployments.env" in message


async def _queue_effects(session: AsyncSession, effects: Sequence[PendingEffect], redactor: Redactor) -> None:
    """Insert ``effects`` into the outbox, in order; a key already queued is left as it is.

    One statement per effect, so ``seq`` follows the order of ``effects`` on every backend.
    """
    for effect in effects:
        try:
            await session.execute(
                sql.insert(session, OutboxRow)
                .values(
                    key=effect.key,
                    deployment_id=effect.deployment_id,
                    effect_type=effect.effect_type,
                    payload=redactor.redact_data(dict(effect.payload)),
                    created_at=effect.created_at,
                    done_at=effect.done_at,
                    attempts=0,
                )
                .on_conflict_do_nothing(index_elements=["key"])
            )
        except IntegrityError as exc:  # only the foreign key is left to violate
            raise NotFound(
                f"effect {effect.key} names deployment {effect.deployment_id}, which does not exist"
            ) from exc


class Repository:
    """Async access to the store over one ``AsyncEngine``. Safe to share; each call is a transaction."""

    def __init__(self, engine: AsyncEngine, *, redactor: Redactor | None = None) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # Free text (reasons, audit outcomes, payloads, errors) is redacted on its way into a row:
        # a database is a way out of the process too (backups, replicas, people reading it).
        self._redactor = redactor or Redactor()

    def _masked(self, values: dict[str, Any], *fields: str) -> dict[str, Any]:
        """``values`` with the text of ``fields`` redacted."""
        return {
            k: self._redactor.redact(v) if k in fields and isinstance(v, str) else v
            for k, v in values.items()
        }

    def _text(self, text: str | None) -> str | None:
        return None if text is None else self._redactor.redact(text)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # -- deployments ------------------------------------------------------------------------------

    async def create_deployment(
        self,
        dep: Deployment,
        event_type: str,
        event_payload: Mapping[str, Any],
        effects: Sequence[PendingEffect] = (),
    ) -> None:
        """Store a new deployment, its first event (``seq`` 1, at ``dep.created_at``) and ``effects``.

        All or nothing. Raises ``DuplicateDeployment`` if the id is taken, ``Busy`` if ``dep`` is
        past ``requested`` while another deployment holds its service and environment.
        """
        async with self._sessions.begin() as session:
            try:
                inserted = await session.execute(
                    sql.insert(session, DeploymentRow)
                    .values(**self._masked(_deployment_values(dep), "reason", "emergency_reason"))
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(DeploymentRow.id)
                )
            except IntegrityError as exc:
                if _violates_one_active(exc):
                    raise Busy(dep.service, dep.env, dep.id) from exc
                raise
            if inserted.first() is None:
                raise DuplicateDeployment(f"a deployment with id {dep.id} already exists")
            session.add(
                DeploymentEventRow(
                    deployment_id=dep.id,
                    seq=1,
                    type=event_type,
                    payload=self._redactor.redact_data(dict(event_payload)),
                    at=dep.created_at,
                )
            )
            await session.flush()
            await _queue_effects(session, effects, self._redactor)

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
        effects: Sequence[PendingEffect] = (),
        completes: Sequence[str] = (),
    ) -> None:
        """Write ``new_dep``, append its event and queue ``effects``, if the stored row is still at
        ``expected_version_no``; all in one transaction, all or nothing.

        ``completes`` names outbox effects whose result this event is: they are marked done in the
        same transaction, so an effect and the event it produced are recorded together or not at all
        (a crash in between re-runs the effect, whose adapter finds its own earlier work).

        The stored ``version_no`` becomes ``expected_version_no + 1`` whatever ``new_dep`` carries
        (``Deployment.with_phase`` already does this). An effect whose key is already in the outbox
        is not queued again (and is no error). Raises ``StaleDeployment`` when another writer got
        there first (or the deployment is gone): two concurrent calls with the same expected
        version, exactly one wins. Raises ``Busy`` when ``new_dep`` would be a second active
        deployment past ``requested`` of its service and environment. Nothing is written then.
        """
        stored = dataclasses.replace(new_dep, version_no=expected_version_no + 1)
        values = self._masked(_deployment_values(stored), "reason", "emergency_reason")
        del values["id"]
        async with self._sessions.begin() as session:
            # The UPDATE comes first: it takes the row lock (PostgreSQL) or the write lock (SQLite),
            # so the seq computed below cannot race with another writer of this deployment.
            try:
                result = await session.execute(
                    update(DeploymentRow)
                    .where(DeploymentRow.id == new_dep.id, DeploymentRow.version_no == expected_version_no)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            except IntegrityError as exc:
                if _violates_one_active(exc):
                    raise Busy(new_dep.service, new_dep.env, new_dep.id) from exc
                raise
            if sql.rowcount(result) != 1:
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
                    payload=self._redactor.redact_data(dict(event_payload)),
                    at=at,
                )
            )
            await session.flush()
            await _queue_effects(session, effects, self._redactor)
            if completes:
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.key.in_(list(completes)), OutboxRow.done_at.is_(None))
                    .values(done_at=at)
                    .execution_options(synchronize_session=False)
                )

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

    async def succeeded(self, service: str, env: str, version: str) -> Deployment | None:
        """The latest deployment of ``version`` that finished ``succeeded`` there (not a rollback)."""
        query = self._filtered(select(DeploymentRow), service, env).where(
            DeploymentRow.phase == Phase.SUCCEEDED.value,
            DeploymentRow.version == version,
            DeploymentRow.is_rollback.is_(False),
        )
        found = await self._deployments(query.order_by(DeploymentRow.updated_at.desc()).limit(1))
        return found[0] if found else None

    async def last_succeeded(self, service: str, env: str) -> Deployment | None:
        """The deployment that most recently finished ``succeeded``.

        Not necessarily what is live now: a later ``/rollback`` ends ``rolled_back`` and restores an
        older version, so ask the cluster for the live image.
        """
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
        """Record a vote; False (and nothing written) if this user already voted so at this stage.

        One vote per person and stage, with one exception: a rejection replaces the same person's
        approval (an approver who spots a problem after approving must be able to stop it). Raises
        ``NotFound`` if the deployment does not exist.
        """
        try:
            async with self._sessions.begin() as session:
                inserted = await session.execute(
                    sql.insert(session, ApprovalRow)
                    .values(
                        deployment_id=vote.deployment_id,
                        stage=vote.stage,
                        user_id=vote.user,
                        approve=vote.approve,
                        at=vote.at,
                        reason=self._text(vote.reason),
                    )
                    .on_conflict_do_nothing(index_elements=["deployment_id", "stage", "user_id"])
                    .returning(ApprovalRow.id)
                )
                if inserted.first() is not None:
                    return True
                if vote.approve:
                    return False
                changed = await session.execute(
                    update(ApprovalRow)
                    .where(
                        ApprovalRow.deployment_id == vote.deployment_id,
                        ApprovalRow.stage == vote.stage,
                        ApprovalRow.user_id == vote.user,
                        ApprovalRow.approve.is_(True),
                    )
                    .values(approve=False, at=vote.at, reason=self._text(vote.reason))
                    .execution_options(synchronize_session=False)
                )
                return sql.rowcount(changed) == 1
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
            reason=self._redactor.redact(lock.reason),
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
            return sql.rowcount(result) == 1

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
        detail = dict(entry.detail)
        target = self._text(entry.target)
        outcome = self._redactor.redact(entry.outcome)
        # The indexed columns are VARCHAR(NAME): a longer refusal is kept whole in the detail.
        if target is not None and len(target) > NAME:
            detail["target"], target = target, _fit(target, NAME)
        if len(outcome) > NAME:
            detail["outcome"], outcome = outcome, _fit(outcome, NAME)
        row = AuditRow(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            channel=entry.channel,
            target=target,
            outcome=outcome,
            detail=self._redactor.redact_data(detail),
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
                stmt = sql.insert(session, SlackRefRow).values(
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

    async def claim_key(self, key: str, at: datetime, takeover_before: datetime | None = None) -> bool:
        """Claim ``key``: True for the first claimer only, also under concurrent claims and replicas.

        With ``takeover_before``, a claim made before it and never completed is taken over (its
        claimer died or hung): the one statement moves its ``created_at`` to ``at``, so of two
        concurrent takers only one matches the condition and wins.
        """
        async with self._sessions.begin() as session:
            stmt = sql.insert(session, IdempotencyKeyRow).values(
                key=key, created_at=at, result=None, completed_at=None
            )
            if takeover_before is None:
                stmt = stmt.on_conflict_do_nothing(index_elements=["key"])
            else:
                stmt = stmt.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"created_at": at},
                    where=IdempotencyKeyRow.completed_at.is_(None)
                    & (IdempotencyKeyRow.created_at < takeover_before),
                )
            inserted = await session.execute(stmt.returning(IdempotencyKeyRow.key))
            return inserted.first() is not None

    async def complete_key(self, key: str, result: Mapping[str, Any], at: datetime) -> None:
        """Record what the work done under ``key`` produced (claiming it too, if nobody had)."""
        async with self._sessions.begin() as session:
            stmt = sql.insert(session, IdempotencyKeyRow).values(
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
            return sql.rowcount(result) == 1

    async def get_key(self, key: str) -> KeyRecord | None:
        async with self._sessions() as session:
            row = await session.get(IdempotencyKeyRow, key)
            if row is None:
                return None
            return KeyRecord(
                key=row.key, created_at=row.created_at, result=row.result, completed_at=row.completed_at
            )

    # -- outbox -----------------------------------------------------------------------------------

    async def pending_effects(self, deployment_id: str | None = None) -> list[PendingEffect]:
        """Effects not yet done (of ``deployment_id``, or all), in the order they were decided."""
        query = select(OutboxRow).where(OutboxRow.done_at.is_(None))
        if deployment_id is not None:
            query = query.where(OutboxRow.deployment_id == deployment_id)
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(OutboxRow.created_at, OutboxRow.seq))
            return [_to_effect(row) for row in rows]

    async def effect_done(self, key: str, at: datetime) -> None:
        """Mark the effect done (the first time only). An unknown key is ignored."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key, OutboxRow.done_at.is_(None))
                .values(done_at=at)
                .execution_options(synchronize_session=False)
            )

    async def effect_failed(self, key: str, error: str, at: datetime) -> None:
        """Count a failed attempt of a pending effect and keep why. An unknown or done key is ignored.

        The effect stays pending: whether and when to try again is the engine's decision.
        """
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key, OutboxRow.done_at.is_(None))
                .values(
                    attempts=OutboxRow.attempts + 1,
                    last_error=self._redactor.redact(error),
                    last_failed_at=at,
                )
                .execution_options(synchronize_session=False)
            )

    async def outbox_entry(self, key: str) -> OutboxEntry | None:
        """The effect under ``key`` with its delivery record, done or not (for people and tests)."""
        async with self._sessions() as session:
            row = await session.scalar(select(OutboxRow).where(OutboxRow.key == key))
            if row is None:
                return None
            return OutboxEntry(_to_effect(row), row.attempts, row.last_error, row.last_failed_at)

    # -- guard watches ----------------------------------------------------------------------------

    async def add_watch(self, watch: GuardWatch) -> GuardWatch:
        """Store a new watch; returns it with its ``id`` (any id given is ignored).

        Raises ``NotFound`` if its deployment or lock does not exist.
        """
        row = GuardWatchRow(**self._masked(_watch_values(watch), "last_reason"))
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                return _to_watch(row)
        except IntegrityError as exc:
            raise NotFound(
                f"watch of {watch.service} in {watch.env}: deployment {watch.deployment_id} "
                f"or lock {watch.lock_id} not found"
            ) from exc

    async def save_watch(self, watch: GuardWatch) -> None:
        """Overwrite the stored watch ``watch.id`` with ``watch``. Raises ``NotFound`` if there is none."""
        if watch.id is None:
            raise NotFound(f"watch of {watch.service} in {watch.env} was never stored (it has no id)")
        try:
            async with self._sessions.begin() as session:
                result = await session.execute(
                    update(GuardWatchRow)
                    .where(GuardWatchRow.id == watch.id)
                    .values(**self._masked(_watch_values(watch), "last_reason"))
                    .execution_options(synchronize_session=False)
                )
                if sql.rowcount(result) != 1:
                    raise NotFound(f"guard watch {watch.id} not found")
        except IntegrityError as exc:
            raise NotFound(
                f"guard watch {watch.id}: deployment {watch.deployment_id} or lock {watch.lock_id} not found"
            ) from exc

    async def active_watches(self) -> list[GuardWatch]:
        """Watches still ``watching``, oldest first: what the scheduler ticks (and resumes at start)."""
        return await self._watches(
            select(GuardWatchRow).where(GuardWatchRow.status == WatchStatus.WATCHING.value)
        )

    async def watches_for(self, service: str, env: str) -> list[GuardWatch]:
        """Every watch of ``service`` in ``env``, whatever its status, oldest first."""
        return await self._watches(
            select(GuardWatchRow).where(GuardWatchRow.service == service, GuardWatchRow.env == env)
        )

    async def _watches(self, query: Select[GuardWatchRow]) -> list[GuardWatch]:
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(GuardWatchRow.id))
            return [_to_watch(row) for row in rows]


def _as_store(repository: Repository) -> Store:
    """Never called: makes mypy prove that ``Repository`` is the engine's ``Store``."""
    return repository


def _fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a visible ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
