"""The engine lease: one engine per database, until several replicas are built properly.

Two engines on one database double notifications, can run two Jenkins builds and deploy requests
that one of them refused. So an engine holds a one-row lease while it runs, renews it every
``RENEW_EVERY`` and gives it up when it stops; another engine that starts meanwhile refuses to run
and names the holder. A holder is gone (and its lease free to take over) when

- its lease expired: no heartbeat for ``TTL`` (a crashed engine on another host, a partition), or
- it ran on this host and its process is gone (a crash and restart, as the crash tests do): no
  need to wait for the TTL then. A holder with *our* pid but another process token was an earlier
  process that had our pid (a container restarted in the same pod: pid 1 again).

The rule is pure; the store reads the row, asks the rule, and takes the lease over with one
conditional statement, so two engines starting together cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

TTL = timedelta(seconds=30)
"""How long a lease lives without a heartbeat."""
RENEW_EVERY = timedelta(seconds=10)
"""How often the holder renews it: three missed heartbeats before anyone may take over."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or wants) the lease: one engine of one process on one host."""

    host: str
    pid: int
    process: str
    """A random token per process: tells an earlier process with the same pid from this one."""
    instance: str
    """A random token per engine: tells two engines of one process apart."""
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Holding:
    """The lease as stored: its holder and how long it lasts without another heartbeat."""

    holder: Holder
    heartbeat_at: datetime
    expires_at: datetime


def is_free(held: Holding, me: Holder, now: datetime, running: Callable[[int], bool]) -> bool:
    """May ``me`` take over ``held`` at ``now``? ``running(pid)``: does that pid run on this host?"""
    other = held.holder
    if other.instance == me.instance or now >= held.expires_at:
        return True
    if other.host != me.host:
        return False
    if other.pid == me.pid:
        return other.process != me.process
    return not running(other.pid)


def held_message(held: Holding, now: datetime) -> str:
    """Why an engine refuses to start, naming the holder and what to do about it."""
    other = held.holder
    ago = max(0, int((now - held.heartbeat_at).total_seconds()))
    return (
        f"another Shipthread engine holds this database: host {other.host}, pid {other.pid}, "
        f"running since {_at(other.started_at)}, last heartbeat {_at(held.heartbeat_at)} ({ago} s ago). "
        f"Only one engine per database is supported for now: stop that one first, or, if it is gone, "
        f"start again after {_at(held.expires_at)}, when its lease expires."
    )


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
