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

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.domain.audit import AuditEntry
from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.domain.watch import GuardWatch, WatchStatus
from bot.errors import Busy, DuplicateDeployment, NotFound
from bot.ports import DeploymentDue, DueWork, PendingEffect, Store, StoredEvent, Transition, WatchDue
from bot.store import due_work, sql, writes
from bot.store import rows as convert
from bot.store.models import (
    ONE_ACTIVE_INDEX,
    DeploymentEventRow,
    DeploymentRow,
    GuardWatchRow,
    OutboxRow,
)
from bot.store.outbox import KeyRecord, OutboxEntry, OutboxQueries, queue_effects
from bot.store.records import RecordQueries, SlackRef

__all__ = [
    "AuditEntry",
    "KeyRecord",
    "OutboxEntry",
    "Repository",
    "SlackRef",
    "StoredEvent",
]


_DEPLOYMENTS = cast(Table, DeploymentRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_EVENTS = cast(Table, DeploymentEventRow.__table__)
_ONE_DEPLOYMENT = select(_DEPLOYMENTS).where(_DEPLOYMENTS.c.id == bindparam("b_id"))
_OWING = (
    exists().where(_OUTBOX.c.deployment_id == bindparam("b_id"), _OUTBOX.c.done_at.is_(None)).label("owing")
)
_ONE_DEPLOYMENT_OWING = select(_DEPLOYMENTS, _OWING).where(_DEPLOYMENTS.c.id == bindparam("b_id"))


def _created_due(dep: Deployment) -> datetime | None:
    """A deployment stored in flight (not queued, not finished) is due at once."""
    return None if dep.phase.terminal or dep.phase is Phase.REQUESTED else dep.created_at


def _violates_one_active(exc: IntegrityError) -> bool:
    """True when ``exc`` is the one-active-deployment index refusing a row (not another constraint)."""
    message = str(exc.orig)
    # PostgreSQL names the index; SQLite names the indexed columns.
    return ONE_ACTIVE_INDEX in message or "deployments.service, deployments.env" in message


class Repository(RecordQueries, OutboxQueries):
    """The engine's ``bot.ports.Store``: deployments and the timer's queries here, the rest in its parts."""

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
        # Core on one connection, as a transition's writes: every /deploy stores one.
        async with self._engine.begin() as conn:
            try:
                inserted = await conn.execute(
                    sql.insert(conn, DeploymentRow)
                    .values(**self._masked(convert.deployment_values(dep), "reason", "emergency_reason"))
                    # Stored in flight (not queued, not finished): due at once, the timer takes it from there.
                    .values(due_at=_created_due(dep))
                    .on_conflict_do_nothing(index_elements=["id"])
                    .returning(DeploymentRow.id)
                )
            except IntegrityError as exc:
                if _violates_one_active(exc):
                    raise Busy(dep.service, dep.env, dep.id) from exc
                raise
            if inserted.first() is None:
                raise DuplicateDeployment(f"a deployment with id {dep.id} already exists")
            await conn.execute(
                insert(_EVENTS).values(
                    deployment_id=dep.id,
                    seq=1,
                    type=event_type,
                    payload=self._redactor.redact_data(dict(event_payload)),
                    at=dep.created_at,
                )
            )
            await queue_effects(conn, effects, self._redactor)

    async def get_deployment(self, deployment_id: str) -> Deployment | None:
        # Core on a bare connection, as the rest of the hot path: every transition and poll reads this.
        async with self._engine.connect() as conn:
            row = (await conn.execute(_ONE_DEPLOYMENT, {"b_id": deployment_id})).first()
            return None if row is None else convert.to_deployment(row)

    async def deployment_owing(self, deployment_id: str) -> tuple[Deployment | None, bool]:
        """The deployment and whether effects of it are pending, in one SELECT: a poll asks both,
        and the outbox is nearly always empty, so it is read only when it is not."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_ONE_DEPLOYMENT_OWING, {"b_id": deployment_id})).first()
            return (None, False) if row is None else (convert.to_deployment(row), bool(row.owing))

    async def save_transition(
        self,
        new_dep: Deployment,
        expected_version_no: int,
        event_type: str,
        event_payload: Mapping[str, Any],
        at: datetime,
        effects: Sequence[PendingEffect] = (),
        completes: Sequence[str] = (),
        due_at: datetime | None = None,
    ) -> None:
        """Write ``new_dep``, append its event and queue ``effects``, if the stored row is still at
        ``expected_version_no``; all in one transaction, all or nothing. ``due_at``: when the engine's
        timer next looks at it (``bot.domain.due``; None: only an event moves it).

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
        transition = Transition(new_dep, expected_version_no, event_type, event_payload, at, effects, due_at)
        await self.save_transition_owed(transition, completes)

    async def save_transition_owed(
        self, transition: Transition, completes: Sequence[str] = ()
    ) -> list[PendingEffect] | None:
        """``save_transition``; returns the effects the deployment's outbox owes now when the UPDATE
        learnt that it owed nothing else (the usual case: the engine then need not read the outbox
        back), else None."""
        new_dep, at = transition.deployment, transition.at
        # Core on one connection: the engine's most frequent write, where the ORM session's cost showed.
        async with self._engine.begin() as conn:
            # What this event completes is marked first, so the UPDATE's answer (did the outbox owe
            # anything?) leaves it out. The UPDATE then takes the row lock (PostgreSQL; SQLite's write
            # lock is already held), so the seq computed in the event's INSERT cannot race another writer.
            if completes:
                await conn.execute(
                    update(_OUTBOX)
                    .where(_OUTBOX.c.key.in_(list(completes)), _OUTBOX.c.done_at.is_(None))
                    .values(done_at=at)
                )
            try:
                owed = await writes.update_one_owing(conn, transition, self._redactor)
            except IntegrityError as exc:
                if _violates_one_active(exc):
                    raise Busy(new_dep.service, new_dep.env, new_dep.id) from exc
                raise
            await conn.execute(
                writes.APPEND_EVENT,
                writes.event_params(
                    new_dep.id, transition.event_type, transition.event_payload, at, self._redactor
                ),
            )
            queued = await queue_effects(conn, transition.effects, self._redactor)
        return None if owed else queued

    async def save_transitions(self, transitions: Sequence[Transition]) -> None:
        """``save_transition`` for many deployments in one transaction, all or nothing: what one
        guard tick's outcomes are stored as. Raises ``StaleDeployment`` (naming the first of them:
        the batch does not tell which) if any deployment was not at its expected version, ``Busy``
        as ``save_transition`` does; nothing is written then."""
        async with self._sessions.begin() as session:
            try:
                await writes.save_many(session, transitions, self._redactor)
            except IntegrityError as exc:
                if _violates_one_active(exc):
                    first = transitions[0].deployment
                    raise Busy(first.service, first.env, first.id) from exc
                raise
            await queue_effects(session, [e for t in transitions for e in t.effects], self._redactor)

    async def get_deployments(self, deployment_ids: Sequence[str]) -> list[Deployment]:
        """The stored deployments among ``deployment_ids``, in one query (unknown ids left out)."""
        return await due_work.deployments(self._engine, deployment_ids)

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
        query = select(_DEPLOYMENTS).where(DeploymentRow.phase.in_(convert.NON_TERMINAL))
        return await self._deployments(self._filtered(query, service, env).order_by(DeploymentRow.created_at))

    async def history(self, service: str | None, env: str | None = None, limit: int = 20) -> list[Deployment]:
        """The latest ``limit`` deployments of ``service`` (all services when None), newest first."""
        query = self._filtered(select(_DEPLOYMENTS), service, env)
        return await self._deployments(
            query.order_by(DeploymentRow.created_at.desc(), DeploymentRow.id.desc()).limit(limit)
        )

    async def succeeded(self, service: str, env: str, version: str) -> Deployment | None:
        """The latest deployment of ``version`` that finished ``succeeded`` there (not a rollback)."""
        query = self._filtered(select(_DEPLOYMENTS), service, env).where(
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
        query = self._filtered(select(_DEPLOYMENTS), service, env).where(
            DeploymentRow.phase == Phase.SUCCEEDED.value
        )
        found = await self._deployments(
            query.order_by(DeploymentRow.updated_at.desc(), DeploymentRow.created_at.desc()).limit(1)
        )
        return found[0] if found else None

    @staticmethod
    def _filtered(query: Select[Any], service: str | None, env: str | None) -> Select[Any]:
        if service is not None:
            query = query.where(DeploymentRow.service == service)
        if env is not None:
            query = query.where(DeploymentRow.env == env)
        return query

    async def _deployments(self, query: Select[Any]) -> list[Deployment]:
        """Core, not the ORM session: a restart reads every active deployment in one go, and at 1,000
        building their ORM objects was one 66 ms callback of the start (``bench/guard_scale.py``)."""
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).all()
        return [convert.to_deployment(row) for row in found]

    # -- guard watches ----------------------------------------------------------------------------

    async def add_watch(self, watch: GuardWatch) -> GuardWatch:
        """Store a new watch; returns it with its ``id`` (any id given is ignored).

        Raises ``NotFound`` if its deployment or lock does not exist.
        """
        values = self._masked(convert.watch_values(watch), "last_reason")
        # Due at once: the timer tells the thread what the window waits for, then works out its ticks.
        values["due_at"] = watch.started_at if watch.status is WatchStatus.WATCHING else None
        row = GuardWatchRow(**values)
        try:
            return await self._inserted(row, convert.to_watch)
        except IntegrityError as exc:
            raise NotFound(
                f"watch of {watch.service} in {watch.env}: deployment {watch.deployment_id} "
                f"or lock {watch.lock_id} not found"
            ) from exc

    async def save_watch(self, watch: GuardWatch, due_at: datetime | None = None) -> None:
        """Overwrite the stored watch ``watch.id`` with ``watch``. Raises ``NotFound`` if there is none.

        ``due_at``: when its next tick is due; None keeps the stored one. A watch that ended has none.
        """
        values = self._masked(convert.watch_values(watch), "last_reason")
        if watch.status is not WatchStatus.WATCHING:
            values["due_at"] = None
        elif due_at is not None:
            values["due_at"] = due_at
        if watch.id is None:
            raise NotFound(f"watch of {watch.service} in {watch.env} was never stored (it has no id)")
        try:
            async with self._sessions.begin() as session:
                result = await session.execute(
                    update(GuardWatchRow)
                    .where(GuardWatchRow.id == watch.id)
                    .values(**values)
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

    # -- the timer (``bot.store.due_work``) ------------------------------------------------------------

    async def take_due(self, now: datetime, limit: int = 1000) -> DueWork:
        """Unfinished deployments and watching watches whose due time has come, earliest first."""
        return await due_work.take_due(self._engine, now, limit)

    async def reschedule(
        self,
        deployments: Sequence[DeploymentDue] = (),
        watches: Sequence[WatchDue] = (),
        *,
        earliest: bool = True,
    ) -> datetime | None:
        """Store next due times of work that did not change meanwhile; the earliest due time now
        (unless ``earliest=False``: the caller wakes the timer itself)."""
        return await due_work.reschedule(self._engine, deployments, watches, earliest=earliest)

    async def next_due_at(self) -> datetime | None:
        """When the timer next has something to do (None: nothing until an event)."""
        return await due_work.earliest(self._engine)

    async def watches_for(self, service: str, env: str) -> list[GuardWatch]:
        """Every watch of ``service`` in ``env``, whatever its status, oldest first."""
        return await self._watches(
            select(GuardWatchRow).where(GuardWatchRow.service == service, GuardWatchRow.env == env)
        )

    async def _watches(self, query: Select[GuardWatchRow]) -> list[GuardWatch]:
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(GuardWatchRow.id))
            return [convert.to_watch(row) for row in rows]


def _as_store(repository: Repository) -> Store:
    """Never called: makes mypy prove that ``Repository`` is the engine's ``Store``."""
    return repository
