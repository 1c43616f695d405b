"""No secret reaches Slack or the thread tables through the real notifier and renderer.

A registered secret with mrkdwn's special characters (``&``, ``<``, ``>``) is what slipped past a
redaction run after escaping: it is given in a rejection reason and in a failed build's console
tail (a long one, cut to Slack's limits), told to the real ``SlackNotifier`` with the real planner
against the Slack emulator. Then every ``slack_*`` row and every message Slack holds (text and
blocks) is searched for the secret, as written and as escaped; and every message is valid Block Kit.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select

from bot.adapters.slack_notifier import NotifierOptions, SlackNotifier
from bot.domain.deployment import Deployment, Strategy
from bot.domain.events import Rejected
from bot.domain.mrkdwn import escape
from bot.domain.notifications import BuildProgress, DeploymentOpened, PhaseChanged
from bot.domain.phases import Phase
from bot.domain.redact import Redactor
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import check_message_blocks, emulator_of
from bot.store.models import SlackMessageRow, SlackThreadRow
from bot.store.threads import ThreadStore
from tests.support.renderer import planner
from tests.support.slack_fixtures import slack as slack  # the fixtures
from tests.support.slack_fixtures import store as store

SECRET = "Pa&ss<w0rd>99"
AT = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def dep(did: str, phase: Phase) -> Deployment:
    return Deployment(did, "checkout", "production", "1.4.2", Strategy.ROLLING, "U0ALICE", phase, AT, AT)


async def test_a_secret_with_markup_characters_reaches_neither_slack_nor_the_thread_rows(
    slack: ServerThread, store: ThreadStore
) -> None:
    chat = SlackNotifier(
        store,
        planner,
        token="xoxb-sandbox",
        base_url=f"{slack.url}/api/",
        channel_for=lambda d: "#deploys",
        options=NotifierOptions(timeout_s=2.0),
        redact=Redactor([SECRET]).redact_data,
    )
    rejected = dep("d1", Phase.AWAITING_APPROVAL)
    failed = dep("d2", Phase.BUILDING)
    # Many masks in a tail cut to the section's limit: a mask put in after the cut would grow it.
    tail = "\n".join(f"step {i}: login with {SECRET} & <retry>" for i in range(400))
    await chat.start()
    try:
        await chat.notify(DeploymentOpened(rejected, "#deploys"))
        reason = f"the password {SECRET} is in the diff"
        await chat.notify(
            PhaseChanged(
                replace(rejected, phase=Phase.REJECTED, reason=reason), Rejected(user="U0BOB", reason=reason)
            )
        )
        await chat.notify(DeploymentOpened(failed, "#deploys"))
        await chat.notify(
            BuildProgress(replace(failed, phase=Phase.FAILED), "failed", None, 1.0, tail, 7, "FAILURE")
        )
        assert await chat.drain(20)
    finally:
        await chat.close()

    emulator = emulator_of(slack.app)
    shown = [json.dumps([m["text"], m.get("blocks")]) for m in emulator.messages("C0DEPLOYS")]
    assert len(shown) >= 3
    async with store.engine.connect() as conn:
        rows = [
            repr(tuple(r))
            for table in (SlackThreadRow, SlackMessageRow)
            for r in await conn.execute(select(table))
        ]
    spellings = [SECRET, escape(SECRET), json.dumps(SECRET)[1:-1]]
    assert [s for s in spellings for text in shown + rows if s in text] == []
    assert any("[redacted]" in text for text in shown)  # it was there, masked
    assert [c for c in emulator.calls() if not c["ok"]] == []  # nothing refused (invalid_blocks...)
    for message in emulator.messages("C0DEPLOYS"):
        assert check_message_blocks(message["blocks"]) == [], message
