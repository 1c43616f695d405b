"""A 30 s Slack outage in the middle of a deployment: the deployment goes on, the thread catches up.

The whole stack as ``shipthread serve`` builds it: Jenkins and Kubernetes emulators, a real
Prometheus, the engine on its own scheduler, and the real notifier and renderer
(``tests.engine.slack_chat``) against the Slack emulator with Slack's rate limits on. Right after
the deployment starts building, Slack answers 500 for 15 s, then holds every request for 15 s
(the client times out). The deployment must keep moving through its phases meanwhile, and once
Slack is back the thread must hold every stage's reply in order, one parent showing the final
phase, nothing twice — within seconds, not minutes.

This test runs 30 s of real outage on purpose (``timeout(180)`` marks it); its figures (calls
and 429s during the outage, catch-up time) are printed with ``-s``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import load_settings
from bot.domain.commands import Deploy
from bot.domain.phases import Phase
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackEmulator, check_message_blocks, emulator_of
from bot.slack.card import phase_label
from tests.adapters.slack_support import canary_thread_keys, card_phase, normalised_keys, read_whole_thread
from tests.engine.slack_chat import SlackChat
from tests.engine.stack import RATIO, build_from_files, create_k8s_deployment, playbook, write_stack_files
from tests.support.prometheus import PrometheusServer
from tests.support.promwrite import Series, push

TOKEN = "xoxb-sandbox"
ERRORS_S = 15.0
"""First part of the outage: every Web API call answers 500."""
HANGS_S = 15.0
"""Second part: every call is held until the outage ends (the client times out)."""
CATCH_UP_S = 30.0
"""The most the thread may take to show everything once Slack is back. Measured: 9–11 s, which is
the notifier's outage backoff (``NotifierOptions.outage_backoff_cap_s``, 10 s) plus the paced posts."""

EXPECTED_KEYS = canary_thread_keys("approvals")
"""Every stage of the deployment (no approvals asked), in order."""


def control(slack: ServerThread, verb: str, payload: dict[str, Any] | None = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{slack.url}/_sandbox/faults", data=data, method=verb, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)


@pytest.mark.timeout(180)
async def test_a_30s_slack_outage_mid_deployment_stalls_nothing_and_the_thread_catches_up(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    # Four guard windows of 4 s: the deployment lives through the 500s into the hangs, and ends
    # (about 17 s in, on an idle machine) before Slack is back.
    book = playbook("checkout", run, strategy="canary", steps=(25, 50, 100), interval=0.5, window=4.0)
    with ServerThread(SlackEmulator().app, name="slack") as slack:
        emulator = emulator_of(slack.app)
        environ = {
            **write_stack_files(tmp_path, prometheus.url, jenkins_server, k8s_server.url, [book]),
            "SLACK_API_URL": f"{slack.url}/api/",
            "SLACK_BOT_TOKEN": TOKEN,
        }
        create_k8s_deployment(
            k8s_server.url, "checkout", "registry.example.com/checkout:1.0.0", replicas=4, track=True
        )
        labels = {"__name__": RATIO, "service": "checkout", "run": run}
        push(prometheus.url, [Series(labels, [(int(time.time() * 1000), 0.0)])])
        chat = SlackChat()
        runtime = await build_from_files(environ, chat, use_scheduler=True, poll_interval_s=0.05)
        await chat.wire(runtime, load_settings(environ["SHIPTHREAD_CONFIG"], environ))
        assert chat.notifier is not None
        try:
            await runtime.engine.start()
            outcome = await runtime.engine.deploy(Deploy("checkout", "2.0.0"), "U0ALICE", "C0DEPLOYS")
            assert outcome.deployment is not None, outcome.message
            did = outcome.deployment.id

            async def phase() -> Phase:
                dep = await runtime.store.get_deployment(did)
                assert dep is not None
                return dep.phase

            deadline = time.monotonic() + 20
            while await phase() is Phase.REQUESTED:
                assert time.monotonic() < deadline, "the deployment never started building"
                await asyncio.sleep(0.02)

            # Slack goes down: 500s, then requests held until the outage ends.
            control(slack, "POST", {"mode": "error", "seconds": ERRORS_S})
            control(slack, "POST", {"mode": "hang", "start_in": ERRORS_S, "seconds": HANGS_S})
            down_at, slack_down_at = time.monotonic(), emulator.clock.now()
            seen: dict[Phase, float] = {}
            while time.monotonic() - down_at < ERRORS_S + HANGS_S:
                seen.setdefault(await phase(), time.monotonic() - down_at)
                await asyncio.sleep(0.05)
            slack_up_at = emulator.clock.now()
            control(slack, "DELETE")
            up_at = time.monotonic()

            # The deployment went on without Slack: it got at least to verifying meanwhile.
            assert seen.keys() & {Phase.VERIFYING, Phase.SUCCEEDED}, seen
            while not (await phase()).terminal:
                assert time.monotonic() - up_at < 60, f"stuck in {await phase()}"
                await asyncio.sleep(0.05)
            assert await phase() is Phase.SUCCEEDED

            assert await chat.notifier.drain(CATCH_UP_S), "the thread did not catch up"
            catch_up = time.monotonic() - up_at
        finally:
            await runtime.close()

        client = AsyncWebClient(token=TOKEN, base_url=f"{slack.url}/api/")
        thread = await read_whole_thread(client, "C0DEPLOYS", did)
        calls = emulator.calls()

    during = [c for c in calls if slack_down_at <= c["time"] < slack_up_at]
    after = [c for c in calls if c["time"] >= slack_up_at]
    reached = {p.value: round(t, 1) for p, t in seen.items()}

    def count(status: int, among: list[dict[str, Any]]) -> int:
        return sum(c["status"] == status for c in among)

    print(
        f"\noutage figures: phases reached (s into the outage) {reached}; {len(during)} calls during it "
        f"({count(500, during)} answered 500, {count(504, during)} held, {count(429, during)} 429s); "
        f"{len(after)} calls after it ({count(429, after)} 429s); "
        f"caught up {catch_up:.1f} s after Slack came back"
    )
    assert any(c["status"] == 500 for c in during) and any(c["status"] == 504 for c in during), during
    assert len(thread.parents) == 1, [m["text"] for m in thread.parents]
    assert card_phase(thread.parents[0]) == phase_label(Phase.SUCCEEDED)
    assert thread.parents[0]["text"] == f"checkout 2.0.0 to production: {phase_label(Phase.SUCCEEDED)}"
    assert normalised_keys(thread.keys) == EXPECTED_KEYS, thread.keys
    assert len(thread.keys) == len(set(thread.keys)), thread.keys  # none twice
    for message in thread.messages:
        assert check_message_blocks(message["blocks"]) == [], message
    assert [c for c in calls if c["status"] == 429] == []  # paced under Slack's limits, outage or not
