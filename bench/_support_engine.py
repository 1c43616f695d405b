"""The engine process the benches measure: ``bot.container.build`` with its real timer, and nothing else.

Why it exists: the benches need the engine alone in a process (its CPU read from ``/proc``, SIGKILLed
and restarted, paused with SIGSTOP) and must run against the engine before and after issue 13, so
this touches only ``bot.config.load_settings``, ``bot.playbooks.load_playbooks``, the migrations,
``bot.container.build`` and the ``Engine``'s public ``start`` / ``deploy`` / ``stop``.

    python bench/_support_engine.py --deploy N   # environment as bench/_support.write_stack returns it

Starts the engine (recovering whatever the database holds), then requests ``/deploy svcNNNN 2.N.0``
for the first N services, and runs until SIGTERM. Chat goes nowhere: Slack is not what is measured.
Prints JSON lines on stdout, each with its wall time: ``imported``, ``starting``, ``started``
(``Engine.start`` returned), ``request_failed`` (a request that raised, asked again up to 5 times),
``requested`` (all asked, with the number refused); with ``BENCH_LAG_PHASES`` set, the loop's lag
per phase (``lag:<phase>``, ``bench/_support_lag.py``).

``--profile out.pstats`` runs it all under cProfile and, on a clean exit (SIGTERM), dumps the profile
there and ``out.pstats.json`` beside it: the SQL statements the engine sent (counted with SQLAlchemy's
``before_cursor_execute`` event, by verb) and the process's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

RETRIES = 5

STATEMENTS: collections.Counter[str] = collections.Counter()
"""SQL statements sent, by verb (counted only with ``--profile``)."""
SITES: collections.Counter[str] = collections.Counter()
"""The same, by verb and call site (store function < engine function; only with ``--profile``)."""
AT_START: dict[str, int] = {}
"""``STATEMENTS``' total when ``Engine.start`` returned (the rest are the lifecycles')."""


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "wall": time.time(), **fields}), flush=True)


class NullChat:
    """The Chat port, saying nothing (the benches measure the engine, not Slack)."""

    async def notify(self, notification: Any) -> None:
        return None


async def request_all(engine: Any, count: int, concurrency: int) -> list[str]:
    from bot.domain.commands import Deploy

    gate = asyncio.Semaphore(concurrency)
    refused: list[str] = []

    async def one(i: int) -> None:
        async with gate:
            for attempt in range(RETRIES):
                try:
                    outcome = await engine.deploy(Deploy(f"svc{i:04d}", f"2.{i}.0"), "U0ALICE", "C0DEPLOYS")
                except Exception as exc:  # a busy SQLite ("database is locked"): ask again, as a person would
                    say("request_failed", service=f"svc{i:04d}", attempt=attempt, error=type(exc).__name__)
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                if outcome.deployment is None:
                    refused.append(str(outcome.message))
                return
            refused.append(f"svc{i:04d}: still failing after {RETRIES} attempts")

    await asyncio.gather(*(one(i) for i in range(count)))
    return refused


async def main(deploy: int, concurrency: int) -> int:
    from bot.config import load_settings
    from bot.container import build
    from bot.playbooks import load_playbooks
    from bot.store.migrate import upgrade

    say("imported")
    # The heap as ``shipthread serve`` keeps it: what the imports built is collected and frozen
    # before the engine starts (``bot.serve.serve_command``), what start-up built is collected young
    # and frozen once it has started (``Server.start``), so no later full collection walks either
    # (a 97-133 ms pass in guard_scale's steady state without it).
    gc.collect()
    gc.freeze()
    settings = load_settings(os.environ["SHIPTHREAD_CONFIG"], dict(os.environ))
    await upgrade(settings.database_url)
    playbooks = load_playbooks(os.environ["SHIPTHREAD_PLAYBOOKS"])
    runtime = build(settings, playbooks, chat=NullChat())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    lag = loop_lag()  # from before Engine.start: its phases are what bench/_support_lag.py reports
    say("starting")
    await runtime.engine.start()
    gc.collect(1)
    gc.freeze()
    AT_START["statements_at_start"] = sum(STATEMENTS.values())
    say("started")
    if lag is not None:
        lag.mark("running")
    try:
        if deploy:
            refused = await request_all(runtime.engine, deploy, concurrency)
            say("requested", count=deploy, refused=len(refused), first_refusal=refused[:1])
        await stopping.wait()
    finally:
        await runtime.close()
    return 0


def loop_lag() -> Any:
    """``bench/_support_lag.PhaseLag`` started on this loop when the bench asked for it (its env)."""
    import _support_lag

    if not os.environ.get(_support_lag.PHASES_ENV):
        return None
    lag = _support_lag.PhaseLag.from_environ(say)
    lag.start()
    return lag


def count_statements() -> None:
    """Every SQL statement any SQLAlchemy engine of this process sends, counted by its first word."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        STATEMENTS[verb] += 1
        SITES[f"{verb} {_site(sys._getframe(1))}"] += 1

    event.listen(Engine, "before_cursor_execute", seen)


def _site(frame: Any) -> str:
    """Where a statement came from: the innermost store function and the engine function above it."""
    import greenlet  # SQLAlchemy's async engine runs the statement in a greenlet under the caller's

    found: list[str] = []
    parent = greenlet.getcurrent().parent
    while len(found) < 2:
        if frame is None:
            if parent is None:
                break
            frame, parent = parent.gr_frame, parent.parent
            continue
        name = frame.f_code.co_filename
        layer = "/bot/store/" if not found else "/bot/engine/"
        if layer in name:
            found.append(f"{Path(name).stem}.{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found) or "?"


def profile_threads() -> list[cProfile.Profile]:
    """A profiler of its own in every thread started from now on (cProfile sees only its thread, and
    SQLite, the Jenkins and Kubernetes clients run in threads: aiosqlite's, the adapters' pools)."""
    profiles: list[cProfile.Profile] = []

    def begin(*_: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()

    threading.setprofile(begin)
    return profiles


def profiled(out: Path, deploy: int, concurrency: int) -> int:
    """``main`` under cProfile (every thread's CPU time, merged); the profile and the statement counts
    written on a clean exit."""
    import pstats

    count_statements()
    threads = profile_threads()
    # Each thread's own CPU time, not wall time: a thread waiting (on SQLite, a socket, the loop's
    # epoll) costs nothing, so the figures add up to the process's CPU.
    profile = cProfile.Profile(time.thread_time)
    code = profile.runcall(asyncio.run, main(deploy, concurrency))
    stats = pstats.Stats(profile)
    if threads:  # a thread still running (none should be, after Runtime.close) is read as it stands
        stats.add(*threads)
    stats.dump_stats(out)
    usage = os.times()
    doc = {"statements": sum(STATEMENTS.values()), "by_verb": dict(STATEMENTS), **AT_START}
    doc["by_site"] = dict(SITES.most_common())
    doc["cpu_s"] = usage.user + usage.system
    Path(f"{out}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return int(code)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deploy", type=int, default=0, help="request this many deployments after start")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--profile", type=Path, help="run under cProfile and dump the profile here")
    args = parser.parse_args()
    if args.profile is not None:
        sys.exit(profiled(args.profile, args.deploy, args.concurrency))
    sys.exit(asyncio.run(main(args.deploy, args.concurrency)))
