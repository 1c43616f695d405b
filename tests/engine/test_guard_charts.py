"""A verdict's chart in the deployment's thread, and a chart that fails never changes the deployment.

The whole stack as ``shipthread serve`` builds it (real Prometheus fed by ``tests.engine.feed``, the
Jenkins and Kubernetes emulators, the real notifier and renderer against the Slack emulator) with
the real chart poster (``bot.container.chart_poster``): matplotlib draws, slack-sdk uploads.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.slack_charts import ChartOptions
from bot.config import load_settings
from bot.container import chart_poster
from bot.domain.chart import VerdictChart
from bot.domain.commands import Deploy
from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.engine.charts import VerdictCharts
from bot.ports import ChartPoster
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackEmulator, emulator_of
from tests.engine.feed import Feed
from tests.engine.slack_chat import SlackChat
from tests.engine.stack import (
    FAST_RETRY,
    RATIO,
    build_from_files,
    create_k8s_deployment,
    playbook,
    write_stack_files,
)
from tests.support.prometheus import PrometheusServer

TOKEN = "xoxb-sandbox"


class LateCharts:
    """``bot.ports.ChartPoster`` forwarding to the real poster once the runtime's database exists."""

    def __init__(self) -> None:
        self.poster: ChartPoster | None = None

    async def post_chart(self, chart: VerdictChart, comment: str) -> None:
        assert self.poster is not None
        await self.poster.post_chart(chart, comment)


def faults(slack: ServerThread, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{slack.url}/_sandbox/faults",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


async def breach(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
    *,
    fault: dict[str, Any] | None = None,
    options: ChartOptions | None = None,
) -> tuple[Deployment, VerdictCharts, list[dict[str, Any]], list[dict[str, Any]], float]:
    """Deploy a version whose 5xx ratio breaches; returns (deployment, charts, emulator files)."""
    book = playbook("checkout", run)
    with ServerThread(SlackEmulator().app, name="slack") as slack:
        environ = {
            **write_stack_files(tmp_path, prometheus.url, jenkins_server, k8s_server.url, [book]),
            "SLACK_API_URL": f"{slack.url}/api/",
            "SLACK_BOT_TOKEN": TOKEN,
        }
        create_k8s_deployment(k8s_server.url, "checkout", "registry.example.com/checkout:1.0.0")
        chat, late = SlackChat(), LateCharts()
        runtime = await build_from_files(environ, chat, charts=late)
        settings = load_settings(environ["SHIPTHREAD_CONFIG"], environ)
        await chat.wire(runtime, settings)
        runtime.charts = poster = chart_poster(
            settings, runtime.store.engine, options or ChartOptions(timeout_s=2.0, thread_wait_s=10.0)
        )
        await poster.start()
        late.poster = poster
        if fault is not None:
            faults(slack, fault)
        feed = Feed(prometheus.url, {"all": {"__name__": RATIO, "service": "checkout", "run": run}})
        feed.history(5, {"all": 0.0})
        charts = runtime.engine.ticks.charts
        try:
            async with feed.running():
                outcome = await runtime.engine.deploy(Deploy("checkout", "1.2.0"), "U0ALICE", "C0DEPLOYS")
                assert outcome.deployment is not None
                did = outcome.deployment.id
                deadline = time.monotonic() + 30
                while True:
                    dep = await runtime.store.get_deployment(did)
                    assert dep is not None
                    if dep.phase is Phase.VERIFYING:
                        feed.values["all"] = 0.3
                    if dep.phase is Phase.ROLLED_BACK or dep.phase.terminal:
                        break
                    assert time.monotonic() < deadline, f"stuck in {dep.phase}"
                    if dep.phase is Phase.ROLLING_BACK:
                        # Only the rollback moves on from here: a guard tick would let the
                        # post-rollback watch finish a 0.6 s window of its own while the rollout
                        # runs, and post its own chart beside the breach's.
                        await runtime.engine.ticks.poll(did)
                    else:
                        await runtime.engine.tick()
                    await asyncio.sleep(0.05)
                started = time.monotonic()
                assert await charts.drain(20)
                waited = time.monotonic() - started
                assert chat.notifier is not None and await chat.notifier.drain(10)
        finally:
            await runtime.close()
        files = emulator_of(slack.app).files()
        thread = emulator_of(slack.app).messages("C0DEPLOYS")
    return dep, charts, files, thread, waited


async def test_a_breach_puts_exactly_one_chart_into_its_thread(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
) -> None:
    dep, charts, files, thread, _ = await breach(tmp_path, prometheus, jenkins_server, k8s_server, run)
    assert dep.phase is Phase.ROLLED_BACK and "5xx ratio" in (dep.reason or "")
    assert (charts.posted, charts.failed) == (1, 0)
    card = next(m for m in thread if (m.get("metadata") or {}).get("event_payload", {}).get("key") == "card")
    assert len(files) == 1 and files[0]["thread_ts"] == card["ts"] and files[0]["channel"] == "C0DEPLOYS"
    assert files[0]["name"].startswith(f"guard-{dep.id}-fail-")
    shared = [m for m in thread if m.get("files")]
    assert len(shared) == 1 and "breached" in shared[0]["text"]


@pytest.mark.parametrize(
    "fault, options",
    [
        ({"mode": "error", "seconds": 600, "methods": ["files.getUploadURLExternal"]}, None),
        ({"mode": "hang", "seconds": 600, "methods": ["files.completeUploadExternal"], "hang_s": 5}, None),
        (None, ChartOptions(render_timeout_s=0.001)),
    ],
    ids=["upload-refused", "upload-hangs", "render-too-slow"],
)
async def test_a_chart_that_fails_never_stalls_or_changes_the_deployment(
    tmp_path: Path,
    prometheus: PrometheusServer,
    jenkins_server: ServerThread,
    k8s_server: ServerThread,
    run: str,
    fault: dict[str, Any] | None,
    options: ChartOptions | None,
) -> None:
    if options is None:
        options = ChartOptions(timeout_s=1.0, thread_wait_s=5.0, retry=FAST_RETRY)
    dep, charts, files, thread, waited = await breach(
        tmp_path, prometheus, jenkins_server, k8s_server, run, fault=fault, options=options
    )
    assert dep.phase is Phase.ROLLED_BACK and "5xx ratio" in (dep.reason or "")
    assert (charts.posted, charts.failed) == (0, 1)
    assert not [f for f in files if f["shared"]]
    assert not [m for m in thread if m.get("files")]
    keys = [(m.get("metadata") or {}).get("event_payload", {}).get("key") for m in thread]
    assert "rollback" in keys  # the thread told the rollback as it would without charts
    print(f"\nthe failed chart gave up after {waited:.1f} s")
