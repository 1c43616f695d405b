"""The engine lease in the database: one row, taken and renewed with conditional statements.

``bot.domain.lease`` says when a holder is gone; this module reads the row, asks, and takes the lease
with one statement that only succeeds if the row is still what was read (an ``INSERT ... ON CONFLICT
DO NOTHING`` when there is none, an ``UPDATE ... WHERE instance = <read> AND heartbeat_at = <read>``
when there is), so of two engines starting together exactly one wins, on SQLite and PostgreSQL alike.
Each statement is its own transaction: no read lock is held between reading and writing, which on
SQLite would turn a race into "database is locked" instead of a clean loss.

Time comes from the engine's clock; engines on different hosts should keep their clocks in sync (NTP)
to within a fraction of the lease's TTL.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.domain import lease as rule
from bot.errors import LeaseHeld, LeaseLost
from bot.ports import Clock, EngineLease
from bot.store import sql
from bot.store.models import ENGINE_LEASE, EngineLeaseRow

log = logging.getLogger("shipthread.lease")

PROCESS = secrets.token_hex(8)
"""This process's token (see ``bot.domain.lease.Holder.process``)."""


def read_boot_id() -> str | None:
    """This kernel's boot id, or None without procfs (not Linux)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def read_pid_namespace() -> int | None:
    """The inode of this process's PID namespace, or None without procfs (not Linux)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


BOOT_ID = read_boot_id()
PID_NAMESPACE = read_pid_namespace()
"""Read once: neither changes while a process runs."""

_ATTEMPTS = 5
"""Reads and conditional writes before giving up on a lease that keeps changing under us."""


def pid_running(pid: int) -> bool:
    """Does ``pid`` run on this host? A zombie (killed, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (not Linux): os.kill is all we know
    # The state follows the command name in parentheses, which may itself hold spaces or ")".
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class DatabaseLease(EngineLease):
    """The lease of one engine (a fresh instance token per object) over the store's database."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        ttl: timedelta = rule.TTL,
        host: str | None = None,
        pid: int | None = None,
        process: str = PROCESS,
        boot_id: str | None = BOOT_ID,
        pid_namespace: int | None = PID_NAMESPACE,
        running: Callable[[int], bool] = pid_running,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self._ttl = ttl
        self._running = running
        self.holder = rule.Holder(
            host=host or socket.gethostname(),
            boot_id=boot_id,
            pid_namespace=pid_namespace,
            pid=os.getpid() if pid is None else pid,
            process=process,
            instance=secrets.token_hex(8),
            started_at=clock.now(),
        )

    async def acquire(self) -> None:
        me = self.holder
        for _ in range(_ATTEMPTS):
            now = self._clock.now()
            held = await self.current()
            if held is None:
                if await self._insert(now):
                    log.info("lease taken by %s pid %d", me.host, me.pid)
                    return
                continue  # another engine inserted first: look at what it wrote
            if not rule.is_free(held, me, now, self._running):
                raise LeaseHeld(rule.held_message(held, now, me))
            if await self._take_over(held, now):
                if held.holder.instance != me.instance:
                    log.warning(
                        "lease taken over from %s pid %d (last heartbeat %s)",
                        held.holder.host,
                        held.holder.pid,
                        held.heartbeat_at.isoformat(),
                    )
                return
        raise LeaseHeld(f"the engine lease kept changing while {_ATTEMPTS} attempts tried to take it")

    async def renew(self) -> None:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(EngineLeaseRow)
                .where(EngineLeaseRow.name == ENGINE_LEASE, EngineLeaseRow.instance == self.holder.instance)
                .values(heartbeat_at=now, expires_at=now + self._ttl)
            )
        if sql.rowcount(result) != 1:
            held = await self.current()
            who = rule.held_message(held, now) if held is not None else "nobody holds it now"
            raise LeaseLost(f"this engine's lease was taken over: {who}")

    async def release(self) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                delete(EngineLeaseRow).where(
                    EngineLeaseRow.name == ENGINE_LEASE, EngineLeaseRow.instance == self.holder.instance
                )
            )

    async def current(self) -> rule.Holding | None:
        """The lease as stored now, or None when nobody holds it."""
        async with self._sessions() as session:
            row = await session.scalar(select(EngineLeaseRow).where(EngineLeaseRow.name == ENGINE_LEASE))
        if row is None:
            return None
        holder = rule.Holder(
            row.host, row.boot_id, row.pid_namespace, row.pid, row.process, row.instance, row.started_at
        )
        return rule.Holding(holder, row.heartbeat_at, row.expires_at)

    def _values(self, now: datetime) -> dict[str, object]:
        me = self.holder
        return {
            "host": me.host,
            "boot_id": me.boot_id,
            "pid_namespace": me.pid_namespace,
            "pid": me.pid,
            "process": me.process,
            "instance": me.instance,
            "started_at": me.started_at,
            "heartbeat_at": now,
            "expires_at": now + self._ttl,
        }

    async def _insert(self, now: datetime) -> bool:
        """Create the row if there is none; True if this engine's row went in."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                sql.insert(session, EngineLeaseRow)
                .values(name=ENGINE_LEASE, **self._values(now))
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(EngineLeaseRow.name)
            )
            return result.first() is not None

    async def _take_over(self, held: rule.Holding, now: datetime) -> bool:
        """Replace ``held`` by this engine if the row is still exactly what was read."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(EngineLeaseRow)
                .where(
                    EngineLeaseRow.name == ENGINE_LEASE,
                    EngineLeaseRow.instance == held.holder.instance,
                    EngineLeaseRow.heartbeat_at == held.heartbeat_at,
                )
                .values(**self._values(now))
            )
        return sql.rowcount(result) == 1
