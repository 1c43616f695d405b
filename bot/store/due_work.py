"""The timer's queries: what is due now, and when each piece of work is due next.

These are the engine's hottest statements (the timer runs them at every wake), so they are written
in SQLAlchemy Core over one connection: no session, no identity map, no ORM instances, a fixed
number of statements whatever the number of rows. Taking what is due is one SELECT per table over
the partial ``due_at`` indexes; storing the next due times is one executemany UPDATE per table,
each row guarded by what the timer saw (a deployment's ``version_no``, a watch's window and tick
count), so a transition that stored its own due time meanwhile is never overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.domain.deployment import Deployment
from bot.domain.watch import WatchStatus
from bot.ports import DeploymentDue, DueWork, WatchDue
from bot.store import rows as convert
from bot.store.models import DeploymentRow, GuardWatchRow

_DEPLOYMENTS: Table = cast(Table, DeploymentRow.__table__)
_WATCHES: Table = cast(Table, GuardWatchRow.__table__)
_WATCHING = WatchStatus.WATCHING.value

_REARM_DEPLOYMENT = (
    update(_DEPLOYMENTS)
    .where(_DEPLOYMENTS.c.id == bindparam("b_id"), _DEPLOYMENTS.c.version_no == bindparam("b_version_no"))
    .values(due_at=bindparam("b_due_at"))
)
_REARM_WATCH = (
    update(_WATCHES)
    .where(
        _WATCHES.c.id == bindparam("b_id"),
        _WATCHES.c.windows == bindparam("b_windows"),
        _WATCHES.c.ticks == bindparam("b_ticks"),
        _WATCHES.c.status == _WATCHING,
    )
    .values(due_at=bindparam("b_due_at"))
)
_EARLIEST = select(func.min(_DEPLOYMENTS.c.due_at).label("at")).where(_DEPLOYMENTS.c.due_at.is_not(None))
_EARLIEST_WATCH = select(func.min(_WATCHES.c.due_at).label("at")).where(
    _WATCHES.c.due_at.is_not(None), _WATCHES.c.status == _WATCHING
)


async def take_due(engine: AsyncEngine, now: datetime, limit: int) -> DueWork:
    """Deployments and watching watches due at ``now``, earliest first (at most ``limit`` each)."""
    async with engine.connect() as conn:
        deployments = await conn.execute(
            select(_DEPLOYMENTS)
            .where(_DEPLOYMENTS.c.due_at.is_not(None), _DEPLOYMENTS.c.due_at <= now)
            .order_by(_DEPLOYMENTS.c.due_at)
            .limit(limit)
        )
        deps = tuple(convert.to_deployment(row) for row in deployments)
        watches = await conn.execute(
            select(_WATCHES)
            .where(_WATCHES.c.due_at.is_not(None), _WATCHES.c.due_at <= now, _WATCHES.c.status == _WATCHING)
            .order_by(_WATCHES.c.due_at)
            .limit(limit)
        )
        return DueWork(deps, tuple(convert.to_watch(row) for row in watches))


async def reschedule(
    engine: AsyncEngine,
    deployments: Sequence[DeploymentDue],
    watches: Sequence[WatchDue],
    *,
    earliest: bool = True,
) -> datetime | None:
    """Store the next due times of work that did not change; the earliest due time stored now.

    ``earliest=False`` leaves that SELECT out (None is returned): a poll's own due time is told to
    the timer directly, and the SELECT was a third of what storing it cost."""
    async with engine.begin() as conn:
        if deployments:
            await conn.execute(
                _REARM_DEPLOYMENT,
                [
                    {"b_id": d.deployment_id, "b_version_no": d.version_no, "b_due_at": d.due_at}
                    for d in deployments
                ],
            )
        if watches:
            await conn.execute(
                _REARM_WATCH,
                [
                    {"b_id": w.watch_id, "b_windows": w.windows, "b_ticks": w.ticks, "b_due_at": w.due_at}
                    for w in watches
                ],
            )
        return await _earliest(conn) if earliest else None


async def earliest(engine: AsyncEngine) -> datetime | None:
    """When the timer next has something to do (None: nothing until an event)."""
    async with engine.connect() as conn:
        return await _earliest(conn)


async def _earliest(conn: AsyncConnection) -> datetime | None:
    both = union_all(_EARLIEST, _EARLIEST_WATCH).subquery()
    found: datetime | None = await conn.scalar(select(func.min(both.c.at)))
    return found


async def deployments(engine: AsyncEngine, deployment_ids: Sequence[str]) -> list[Deployment]:
    """The stored deployments among ``deployment_ids``, in one SELECT (the guard tick's batch)."""
    if not deployment_ids:
        return []
    async with engine.connect() as conn:
        found = await conn.execute(select(_DEPLOYMENTS).where(_DEPLOYMENTS.c.id.in_(list(deployment_ids))))
        return [convert.to_deployment(row) for row in found]
