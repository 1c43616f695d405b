"""SIGKILL at every transition of a canary deployment, with the real notifier: one thread, exact.

The crash harness (``tests.engine.crash_harness``) runs the engine with the Slack notifier against
a Slack emulator that lives in this (the test's) process, Slack's rate limits on, and dies at a
transition; restarted on the same database until the deployment ends. The thread it leaves must
be what an uninterrupted run leaves: one parent message, updated in place to the final phase, and
the same replies in the same order — none posted twice, none missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackEmulator, emulator_of
from tests.adapters.slack_support import card_text, read_thread
from tests.engine.test_crash import _run_until_finished, _stack_files

TOKEN = "xoxb-sandbox"


def _thread(slack: ServerThread) -> tuple[list[dict[str, Any]], list[str]]:
    async def read() -> tuple[list[dict[str, Any]], list[str]]:
        client = AsyncWebClient(token=TOKEN, base_url=f"{slack.url}/api/")
        history = await client.conversations_history(channel="C0DEPLOYS", include_all_metadata=True)
        (deployment,) = {m["metadata"]["event_payload"]["deployment"] for m in history["messages"]}
        return await read_thread(client, "C0DEPLOYS", deployment)

    return asyncio.run(read())


def _slack_env(slack: ServerThread) -> dict[str, str]:
    return {"SLACK_API_URL": f"{slack.url}/api/", "SLACK_BOT_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def reference_thread(tmp_path_factory, prometheus) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
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
        assert _run_until_finished("none", {**environ, **_slack_env(slack)}) == []
        yield _thread(slack)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["after", "before"])
def test_a_thread_survives_sigkill_at_every_transition(
    mode, reference_thread, tmp_path, prometheus, jenkins_server, k8s_server, run
) -> None:
    with ServerThread(SlackEmulator().app, name="slack") as slack:
        environ = _stack_files(tmp_path, prometheus, jenkins_server, k8s_server, run)
        killed = _run_until_finished(mode, {**environ, **_slack_env(slack)})
        assert len(killed) >= 20
        parents, keys = _thread(slack)
        calls = emulator_of(slack.app).calls()
    ref_parents, ref_keys = reference_thread
    assert len(parents) == 1 and len(ref_parents) == 1
    assert parents[0]["text"] == ref_parents[0]["text"]
    assert parents[0]["text"].startswith(card_text("checkout", "2.0.0", "succeeded", 0)[:-9])
    assert keys == ref_keys  # the same replies, in the same order
    assert len(keys) == len(set(keys)), keys  # none twice
    assert [c for c in calls if c["status"] == 429] == []
