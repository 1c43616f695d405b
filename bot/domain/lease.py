"""The engine lease: one engine per database, until several replicas are built properly.

Two engines on one database double notifications, can run two Jenkins builds and deploy requests
that one of them refused. So an engine holds a one-row lease while it runs, renews it every
``RENEW_EVERY`` and gives it up when it stops; another engine that starts meanwhile refuses to run
and names the holder. A holder is gone (and its lease free to take over) when

- its lease expired: no heartbeat for ``TTL`` (a crashed engine on another host, a partition), or
- it ran where we can see its processes and its process is gone (a crash and restart, as the crash
  tests do): no need to wait for the TTL then. A holder with *our* pid but another process token
  was an earlier process that had our pid.

"Where we can see its processes" is the same host name *and* the same kernel boot *and* the same PID
namespace, all three known. A host name alone is not enough: containers run with ``--network host``
share the host's name but each has its own PID namespace, where both engines are pid 1 and neither
can see the other; a pid read in the wrong namespace would let a second engine take the lease from a
live one at once. So an engine restarted in a new container (a new PID namespace) after a crash waits
for the TTL; one that stopped cleanly released the lease, and the next starts at once.

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
    boot_id: str | None
    """The kernel's boot id (``/proc/sys/kernel/random/boot_id``); None where there is none."""
    pid_namespace: int | None
    """The inode of the process's PID namespace (``/proc/self/ns/pid``); None where there is none."""
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
    """May ``me`` take over ``held`` at ``now``? ``running(pid)``: does that pid run in our namespace?"""
    other = held.holder
    if other.instance == me.instance or now >= held.expires_at:
        return True
    if not sees_processes_of(me, other):
        return False  # its pids are not ours to look up: only the TTL says it is gone
    if other.pid == me.pid:
        return other.process != me.process
    return not running(other.pid)


def sees_processes_of(me: Holder, other: Holder) -> bool:
    """Are ``other``'s pids ``me``'s to look up: same host, kernel boot and PID namespace, all known?"""
    return (
        other.host == me.host
        and me.boot_id is not None
        and other.boot_id == me.boot_id
        and me.pid_namespace is not None
        and other.pid_namespace == me.pid_namespace
    )


def held_message(held: Holding, now: datetime, me: Holder | None = None) -> str:
    """Why an engine refuses to start, naming the holder and what to do about it."""
    other = held.holder
    ago = max(0, int((now - held.heartbeat_at).total_seconds()))
    hidden = ""
    if me is not None and other.host == me.host and not sees_processes_of(me, other):
        hidden = (
            " It runs under this host name but in another PID namespace or boot (another container?), "
            "where this engine cannot see whether it is alive."
        )
    return (
        f"another Shipthread engine holds this database: host {other.host}, pid {other.pid}, "
        f"running since {_at(other.started_at)}, last heartbeat {_at(held.heartbeat_at)} ({ago} s ago)."
        f"{hidden} Only one engine per database is supported for now: stop that one first, or, if it is "
        f"gone, start again after {_at(held.expires_at)}, when its lease expires."
    )


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
