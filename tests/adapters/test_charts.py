"""Verdict charts: a valid PNG of the expected size, uploaded into the right thread through the real
slack-sdk (``files_upload_v2``) against the Slack emulator, and refused the way Slack refuses."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.charts import HEADER_PX, PANEL_PX, WIDTH_PX, render_png, size_of
from bot.adapters.slack_charts import ChartOptions, SlackChartPoster
from bot.domain.chart import CheckChart, Series, VerdictChart
from bot.domain.notifications import DeploymentOpened
from bot.domain.phases import Phase
from bot.errors import PermanentError
from bot.sandbox.server import ServerThread
from bot.store.threads import ThreadStore
from tests.adapters.test_slack_notifier import TOKEN, control, dep, emulator, notifier
from tests.support.slack_fixtures import slack as slack  # the fixtures
from tests.support.slack_fixtures import store as store

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def fetch(request: urllib.request.Request | str) -> tuple[int, bytes]:
    with urllib.request.urlopen(request, timeout=5) as resp:
        return int(resp.status), bytes(resp.read())


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chart(checks: int = 2, did: str = "d1") -> VerdictChart:
    points = tuple((T0.timestamp() + i * 0.5 - 5, 0.01 if i < 20 else 0.3) for i in range(40))
    panels = [
        CheckChart(
            "5xx ratio <!channel> $x$",
            Series(points),
            max=0.05,
            baseline=Series(((T0.timestamp(), 0.01),)),
            baseline_label="before",
            settles_at=T0 + timedelta(seconds=2),
        ),
        CheckChart("latency", Series(), min=0.0, error="range query failed: boom"),
        CheckChart("empty", Series()),
    ][:checks]
    return VerdictChart(
        did,
        "checkout 1.2.0 in production: guard breached",
        "fail",
        tuple(panels),
        T0 - timedelta(seconds=5),
        T0 + timedelta(seconds=15),
        changed_at=T0,
        rollback_at=T0 + timedelta(seconds=14),
        failing_ticks=(T0 + timedelta(seconds=12), T0 + timedelta(seconds=13)),
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (which must come first)."""
    assert data[:8] == PNG_MAGIC, data[:8]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


@pytest.mark.parametrize("checks", [0, 1, 3])
def test_the_chart_is_a_png_of_the_announced_size(checks: int) -> None:
    drawn = chart(checks)
    started = time.perf_counter()
    data = render_png(drawn)
    took = time.perf_counter() - started
    print(f"\nchart of {checks} check(s): {len(data)} bytes in {took * 1000:.0f} ms")
    assert png_size(data) == size_of(drawn) == (WIDTH_PX, HEADER_PX + PANEL_PX * max(1, checks))
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert pixels.shape[:2] == (size_of(drawn)[1], WIDTH_PX)
    assert pixels.std() > 0.01  # something was drawn, not a blank canvas


async def test_the_chart_is_uploaded_into_its_deployments_thread(
    slack: ServerThread, store: ThreadStore
) -> None:
    chat = notifier(slack, store)
    await chat.start()
    poster = SlackChartPoster(store, token=TOKEN, base_url=f"{slack.url}/api/")
    await poster.start()
    try:
        await chat.notify(DeploymentOpened(dep("d1", phase=Phase.REQUESTED), "#deploys"))
        await chat.notify(DeploymentOpened(dep("d2", phase=Phase.REQUESTED), "#deploys"))
        assert await chat.drain(10)
        await poster.post_chart(chart(did="d2"), "📈 the chart")
    finally:
        await poster.close()
        await chat.close()
    cards = {
        m["metadata"]["event_payload"]["deployment"]: m
        for m in emulator(slack).messages()
        if m.get("metadata")
    }
    files = control(slack, "GET", "files")["files"]
    assert len(files) == 1 and files[0]["shared"]
    assert files[0]["channel"] == "C0DEPLOYS" and files[0]["thread_ts"] == cards["d2"]["ts"]
    _, data = await asyncio.to_thread(fetch, f"{slack.url}/_sandbox/files/{files[0]['id']}/content")
    assert png_size(data) == size_of(chart())
    client = AsyncWebClient(token=TOKEN, base_url=f"{slack.url}/api/")
    replies = (await client.conversations_replies(channel="C0DEPLOYS", ts=cards["d2"]["ts"]))["messages"]
    shared = [m for m in replies if m.get("files")]
    assert [m["text"] for m in shared] == ["📈 the chart"]
    assert shared[0]["files"][0]["name"].startswith("guard-d2-fail-")
    other = (await client.conversations_replies(channel="C0DEPLOYS", ts=cards["d1"]["ts"]))["messages"]
    assert not any(m.get("files") for m in other)


async def test_a_chart_that_cannot_be_drawn_in_time_is_refused_not_waited_for(store: ThreadStore) -> None:
    poster = SlackChartPoster(
        store, token=TOKEN, base_url="http://127.0.0.1:9/api/", options=ChartOptions(render_timeout_s=0.001)
    )
    await poster.start()
    try:
        started = time.monotonic()
        with pytest.raises(PermanentError, match="to draw"):
            await poster.post_chart(chart(3), "never shown")
        assert time.monotonic() - started < 1.0
    finally:
        await poster.close()


async def test_the_emulator_refuses_uploads_as_slack_does(slack: ServerThread) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=f"{slack.url}/api/")
    with pytest.raises(SlackApiError) as missing:
        await client.api_call("files.getUploadURLExternal", params={"filename": "a.png"})
    assert missing.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as alt:
        await client.files_getUploadURLExternal(filename="a.png", length=3, alt_txt="x" * 1001)
    assert alt.value.response["error"] == "alt_txt_too_large"
    with pytest.raises(SlackApiError) as unknown:
        await client.files_completeUploadExternal(files=[{"id": "F0NOPE"}], channel_id="C0DEPLOYS")
    assert unknown.value.response["error"] == "file_not_found"
    issued = await client.files_getUploadURLExternal(filename="a.png", length=3)
    with pytest.raises(SlackApiError) as early:
        await client.files_completeUploadExternal(files=[{"id": issued["file_id"]}], channel_id="C0DEPLOYS")
    assert early.value.response["error"] == "file_upload_not_complete"
    request = urllib.request.Request(issued["upload_url"], data=b"abc", method="POST")
    assert await asyncio.to_thread(fetch, request) == (200, b"OK - 3")
    with pytest.raises(SlackApiError) as nowhere:
        await client.files_completeUploadExternal(files=[{"id": issued["file_id"]}], channel_id="C0NOWHERE")
    assert nowhere.value.response["error"] == "channel_not_found"
    done = await client.files_completeUploadExternal(
        files=[{"id": issued["file_id"]}], channel_id="C0DEPLOYS"
    )
    assert done["files"][0]["id"] == issued["file_id"]
    with pytest.raises(SlackApiError) as twice:
        await client.files_completeUploadExternal(files=[{"id": issued["file_id"]}], channel_id="C0DEPLOYS")
    assert twice.value.response["error"] == "file_not_found"
    tiers = {c["method"] for c in emulator(slack).calls()}
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= tiers
