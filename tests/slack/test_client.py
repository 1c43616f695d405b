"""The Slack layer's Web API client: a 429 is retried once, except where the arguments expire first.

Against the Slack emulator with a limit of one call a minute on the methods under test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from bot.metrics import Metrics
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import RateLimits, create_slack_app, emulator_of
from bot.slack.client import CountingWebClient

VIEW = {"type": "modal", "title": {"type": "plain_text", "text": "Roll back"}, "blocks": []}


@pytest.fixture
def slack() -> Iterator[ServerThread]:
    limits = RateLimits(methods={"views.open": 1})
    with ServerThread(create_slack_app(rate_limits=limits), name="slack") as server:
        yield server


async def test_views_open_is_not_retried_after_a_429_its_trigger_would_be_dead(slack: ServerThread) -> None:
    emulator = emulator_of(slack.app)
    client = CountingWebClient(Metrics(), token="xoxb-sandbox", base_url=f"{slack.url}/api/", timeout=5)
    await client.views_open(trigger_id=emulator.issue_trigger("U0BOB"), view=VIEW)
    started = time.monotonic()
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(trigger_id=emulator.issue_trigger("U0BOB"), view=VIEW)
    assert refused.value.response.status_code == 429
    # slack-sdk's handler would have slept the Retry-After (a minute's window here) and tried again.
    assert time.monotonic() - started < 1.0
    assert len(emulator.calls("views.open")) == 2
