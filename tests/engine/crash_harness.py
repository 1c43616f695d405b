"""An engine process that kills itself with SIGKILL at a transition (the crash tests run it).

``python -m tests.engine.crash_harness --mode after|before|none`` builds the engine from the files
and environment ``tests.engine.stack.write_stack_files`` prepared, recovers from the database,
requests the deployment if the store has none yet, approves it when asked, and runs the real
scheduler until the deployment is finished. With ``--mode after`` it dies right after storing its
first transition; with ``--mode before`` right before storing its second, that is after the first
transition's effects ran against Jenkins and Kubernetes but before their result was stored. Run
again and again on the same database, each process moves the deployment on by one step and dies.
With ``SLACK_API_URL`` (and ``SLACK_BOT_TOKEN``) set, the engine talks to that Slack through the
real notifier and the real renderer, wired as production wires them (``tests.engine.slack_chat``),
instead of recording what it says; a finished run waits until Slack shows everything it said.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time

from bot.config import load_settings
from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment
from bot.domain.events import Event
from bot.domain.phases import Phase
from bot.sandbox.chat import RecordingChat
from tests.engine.slack_chat import SlackChat
from tests.engine.stack import build_from_files

SLACK_DRAIN_S = 60.0
"""How long a finished run waits for Slack to show everything (paced at Slack's real limits)."""


async def main(mode: str, service: str, version: str, timeout: float) -> int:
    saved = 0

    def crash(stage: str, dep: Deployment, event: Event) -> None:
        nonlocal saved
        if stage == "after":
            saved += 1
        if (mode == "after" and stage == "after" and saved == 1) or (
            mode == "before" and stage == "before" and saved == 1
        ):
            print(
                json.dumps({"killed": stage, "event": type(event).__name__, "phase": dep.phase}), flush=True
            )
            os.kill(os.getpid(), signal.SIGKILL)

    slack = SlackChat()
    runtime = await build_from_files(
        dict(os.environ),
        slack if os.environ.get("SLACK_API_URL") else RecordingChat(),
        use_scheduler=True,
        poll_interval_s=0.05,
        on_transition=crash,
    )
    if os.environ.get("SLACK_API_URL"):
        await slack.wire(runtime, load_settings(os.environ["SHIPTHREAD_CONFIG"], os.environ))
    engine = runtime.engine
    await engine.start()
    history = await runtime.store.history(service, "production", limit=1)
    if history:
        did = history[0].id
    else:
        outcome = await engine.deploy(Deploy(service, version), "U0ALICE", "C0DEPLOYS")
        assert outcome.deployment is not None, outcome.message
        did = outcome.deployment.id
    deadline = time.monotonic() + timeout
    while True:
        dep = await runtime.store.get_deployment(did)
        assert dep is not None
        if dep.phase.terminal:
            break
        if dep.phase is Phase.AWAITING_APPROVAL:
            await engine.approve(did, "U0BOB")
        if time.monotonic() > deadline:
            print(json.dumps({"stuck": dep.phase, "step": dep.step}), flush=True)
            return 2
        await asyncio.sleep(0.05)
    if slack.notifier is not None and not await slack.notifier.drain(SLACK_DRAIN_S):
        print(json.dumps({"undelivered": did}), flush=True)
        return 3
    print(json.dumps({"finished": dep.phase, "id": did}), flush=True)
    await runtime.close()
    return 0


def cli(argv: list[str] | None = None) -> int:
    """One run from the command line (``tests.engine.prefork`` calls it in each fork)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["after", "before", "none"], required=True)
    parser.add_argument("--service", default="checkout")
    parser.add_argument("--version", default="2.0.0")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    return asyncio.run(main(args.mode, args.service, args.version, args.timeout))


if __name__ == "__main__":
    sys.exit(cli())
