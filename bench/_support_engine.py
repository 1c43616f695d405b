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
``requested`` (all asked, with the number refused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

RETRIES = 5


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
    settings = load_settings(os.environ["SHIPTHREAD_CONFIG"], dict(os.environ))
    await upgrade(settings.database_url)
    playbooks = load_playbooks(os.environ["SHIPTHREAD_PLAYBOOKS"])
    runtime = build(settings, playbooks, chat=NullChat())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    say("starting")
    await runtime.engine.start()
    say("started")
    try:
        if deploy:
            refused = await request_all(runtime.engine, deploy, concurrency)
            say("requested", count=deploy, refused=len(refused), first_refusal=refused[:1])
        await stopping.wait()
    finally:
        await runtime.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deploy", type=int, default=0, help="request this many deployments after start")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.deploy, args.concurrency)))
