"""Storing transitions in as few statements as the databases allow, one deployment or many at once.

A transition is three writes: the deployment's row (only if nobody changed it since it was read:
``version_no``), its event appended to the history, its effects queued in the outbox. The event's
``seq`` is computed inside its INSERT (``max(seq) + 1`` of that deployment, a scalar subquery), so
there is no SELECT before it; the UPDATE comes first and holds the row's lock (PostgreSQL) or the
write lock (SQLite), so that subquery cannot race another writer. Many transitions (a guard tick's
outcomes) go in one transaction as one executemany UPDATE and one executemany INSERT where the
driver reports executemany's row counts (SQLite), else one UPDATE per row (asyncpg) — the check that
every row was still at its expected version is what makes the batch safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert, Update

from bot.domain.redact import Redactor
from bot.errors import StaleDeployment
from bot.ports import Transition
from bot.store import rows as convert
from bot.store import sql
from bot.store.models import DeploymentEventRow, DeploymentRow, OutboxRow

_DEPLOYMENTS = cast(Table, DeploymentRow.__table__)
_EVENTS = cast(Table, DeploymentEventRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_MASKED = ("reason", "emergency_reason")
"""Free-text fields of a deployment, redacted on their way into the row."""


def _append_event() -> Insert:
    next_seq = (
        select(func.coalesce(func.max(_EVENTS.c.seq), 0) + 1)
        .where(_EVENTS.c.deployment_id == bindparam("b_id"))
        .scalar_subquery()
    )
    return insert(_EVENTS).values(
        deployment_id=bindparam("b_id"),
        seq=next_seq,
        type=bindparam("b_type"),
        payload=bindparam("b_payload", type_=_EVENTS.c.payload.type),
        at=bindparam("b_at", type_=_EVENTS.c.at.type),
    )


def _update_deployment() -> Update:
    columns = [c for c in _DEPLOYMENTS.c if c.name != "id"]
    return (
        update(_DEPLOYMENTS)
        .where(_DEPLOYMENTS.c.id == bindparam("b_id"), _DEPLOYMENTS.c.version_no == bindparam("b_expected"))
        .values({c.name: bindparam(f"v_{c.name}", type_=c.type) for c in columns})
    )


APPEND_EVENT = _append_event()
UPDATE_DEPLOYMENT = _update_deployment()
UPDATE_DEPLOYMENT_OWING = UPDATE_DEPLOYMENT.returning(
    exists().where(_OUTBOX.c.deployment_id == bindparam("b_id"), _OUTBOX.c.done_at.is_(None)).label("owing")
)
"""The guarded UPDATE, answering whether the deployment's outbox owed anything before this
transition: when not, what it owes after is what the transition queued, and nobody reads it."""


def deployment_params(transition: Transition, redactor: Redactor) -> dict[str, Any]:
    """The UPDATE's parameters for one transition (``version_no`` is always expected + 1)."""
    stored = dataclasses.replace(transition.deployment, version_no=transition.expected_version_no + 1)
    values = convert.deployment_values(stored)
    for name in _MASKED:
        if isinstance(values[name], str):
            values[name] = redactor.redact(values[name])
    values["due_at"] = None if stored.phase.terminal else transition.due_at
    params = {f"v_{k}": v for k, v in values.items() if k != "id"}
    params.update(b_id=stored.id, b_expected=transition.expected_version_no)
    return params


def event_params(
    deployment_id: str, event_type: str, payload: Mapping[str, Any], at: Any, redactor: Redactor
) -> dict[str, Any]:
    return {
        "b_id": deployment_id,
        "b_type": event_type,
        "b_payload": redactor.redact_data(dict(payload)),
        "b_at": at,
    }


async def update_one(session: sql.Executor, transition: Transition, redactor: Redactor) -> None:
    """The guarded UPDATE of one deployment; ``StaleDeployment`` if it was not at its version."""
    result = await session.execute(UPDATE_DEPLOYMENT, deployment_params(transition, redactor))
    if sql.rowcount(result) != 1:
        raise StaleDeployment(transition.deployment.id, transition.expected_version_no)


async def update_one_owing(session: sql.Executor, transition: Transition, redactor: Redactor) -> bool:
    """``update_one``, answering whether the deployment's outbox held effects not yet done."""
    result = await session.execute(UPDATE_DEPLOYMENT_OWING, deployment_params(transition, redactor))
    row = result.first()
    if row is None:
        raise StaleDeployment(transition.deployment.id, transition.expected_version_no)
    return bool(row.owing)


async def save_many(session: AsyncSession, transitions: Sequence[Transition], redactor: Redactor) -> None:
    """Every transition's UPDATE and event in ``session``'s transaction (effects: the caller's)."""
    if not transitions:
        return
    if session.get_bind().dialect.supports_sane_multi_rowcount and len(transitions) > 1:
        result = await session.execute(
            UPDATE_DEPLOYMENT, [deployment_params(t, redactor) for t in transitions]
        )
        if sql.rowcount(result) != len(transitions):
            first = transitions[0]
            raise StaleDeployment(first.deployment.id, first.expected_version_no)
    else:
        for transition in transitions:
            await update_one(session, transition, redactor)
    await session.execute(
        APPEND_EVENT,
        [event_params(t.deployment.id, t.event_type, t.event_payload, t.at, redactor) for t in transitions],
    )
