"""SIGKILL at every transition of a canary deployment, with the real notifier: one thread, exact.

The crash harness (``tests.engine.crash_harness``) runs the engine with the Slack notifier and the
real renderer (``bot.slack.thread.plan``, wired as ``bot.container.slack_notifier`` wires it)
against a Slack emulator that lives in this (the test's) process, Slack's rate limits on, and dies
at a transition; restarted on the same database until the deployment ends. The thread it leaves
must be what an uninterrupted run leaves: one parent message, updated in place to the final
phase, and the same replies in the same order — none posted twice, none missing. The renderer's
guard-window keys hold the window's start time, which differs between runs: keys are compared
with their times replaced by their order (``normalised_keys``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.phases import Phase
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackEmulator, check_message_blocks, emulator_of
from bot.slack.card import phase_label
from tests.adapters.slack_support import (
    Thread,
    canary_thread_keys,
    card_phase,
    normalised_keys,
    read_whole_thread,
)
from tests.engine.prefork import Prefork
from tests.engine.test_crash import ROOT, _run_until_finished, _stack_files
from tests.support.prometheus import PrometheusServer

TOKEN = "xoxb-sandbox"


def _thread(slack: ServerThread) -> Thread:
    async def read() -> Thread:
        client = AsyncWebClient(token=TOKEN, base_url=f"{slack.url}/api/")
        history = await client.conversations_history(channel="C0DEPLOYS", include_all_metadata=True)
        (deployment,) = {m["metadata"]["event_payload"]["deployment"] for m in history["messages"]}
        return await read_whole_thread(client, "C0DEPLOYS", deployment)

    return asyncio.run(read())


def _slack_env(slack: ServerThread) -> dict[str, str]:
    return {"SLACK_API_URL": f"{slack.url}/api/", "SLACK_BOT_TOKEN": TOKEN}


def assert_one_finished_thread(thread: Thread) -> None:
    """One parent showing the final phase, every reply once, every message valid Block Kit."""
    assert len(thread.parents) == 1, [m["text"] for m in thread.parents]
    assert card_phase(thread.parents[0]) == phase_label(Phase.SUCCEEDED), thread.parents[0]["blocks"]
    assert len(thread.keys) == len(set(thread.keys)), thread.keys  # none twice
    for message in thread.messages:
        assert check_message_blocks(message["blocks"]) == [], message


@pytest.fixture(scope="module")
def harness() -> Iterator[Prefork]:
    """The process each harness run is forked from (``tests.engine.prefork``)."""
    with Prefork(ROOT) as prefork:
        yield prefork


@pytest.fixture(scope="module")
def reference_thread(
    tmp_path_factory: pytest.TempPathFactory, prometheus: PrometheusServer, harness: Prefork
) -> Iterator[Thread]:
    """The thread an uninterrupted run of the same deployment leaves."""
    from bot.sandbox.jenkins import create_jenkins_app
    from bot.sandbox.kubernetes import create_kubernetes_app
    from tests.engine.stack import new_run

    with (
        ServerThread(create_jenkins_app(time_scale=0.05)) as jenkins,
        ServerThread(create_kubernetes_app(time_scale=0.05)) as k8s,
        ServerThread(SlackEmulator().app, name="slack") as slack,
    ):
        environ = _stack_files(tmp_path_factory.mktemp("reference"), prometheus, jenkins, k8s, new_run())
        assert _run_until_finished(harness, "none", {**environ, **_slack_env(slack)}) == []
        thread = _thread(slack)
    assert_one_finished_thread(thread)
    # Every stage of the canary has its reply: approval, build, each step's rollout and guard window.
    assert normalised_keys(thread.keys) == canary_thread_keys("approval:0"), thread.keys
    yield thread


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_thread_survives_sigkill_at_every_transition(
    mode: str,
    reference_thread: Thread,
    harness: Prefork,
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    with ServerThread(SlackEmulator().app, name="slack") as slack:
        environ = _stack_files(tmp_path, prometheus, jenkins_server, k8s_server, run)
        killed = _run_until_finished(harness, mode, {**environ, **_slack_env(slack)})
        assert len(killed) >= 20
        thread = _thread(slack)
        calls = emulator_of(slack.app).calls()
    assert_one_finished_thread(thread)
    assert thread.parents[0]["text"] == reference_thread.parents[0]["text"]
    # The same replies, in the same order, with the window start times as their order.
    assert normalised_keys(thread.keys) == normalised_keys(reference_thread.keys)
    assert [c for c in calls if c["status"] == 429] == []
