"""Delivery keys and approver lookups through ``shipthread serve``: a Slack blip never strands a click.

A lookup of a Slack user group that fails once must neither lock its members out (an empty group,
cached for minutes) nor spend the click's delivery key: the clicker hears "try again", and the
same button, clicked again, acts.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import Usergroup, emulator_of
from bot.slack import actions
from tests.engine.stack import playbook
from tests.slack.serve_process import ServeProcess
from tests.slack.test_app_scenarios import card_says, opened, told

ONCALL = Usergroup("S0ONCALL", "oncall", "On call", ("U0ERIN",))
CONFIG = {"approver_groups": {"sre": ["U0BOB", "U0CAROL"], "oncall": ["@oncall"]}, "break_glass": "oncall"}


async def fail_next(serve: ServeProcess, method: str, calls: int = 1) -> None:
    """The Slack emulator answers the next ``calls`` calls of ``method`` with a 500."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(
            f"{serve.slack.url}/_sandbox/faults",
            json={"mode": "error", "calls": calls, "methods": [method], "status": 503},
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def test_a_group_lookup_that_fails_once_says_try_again_and_the_same_click_then_acts(
    run: str, serve_of: Callable[..., ServeProcess], slack_server: ServerThread
) -> None:
    emulator_of(slack_server.app).add_usergroup(ONCALL)
    serve = serve_of(playbook("checkout", run, approvals=[{"group": "sre", "count": 1}]), config=CONFIG)
    driver = serve.driver()
    await driver.slash_command("/deploy", "checkout 2.0.0 to production", user_id="U0ALICE")
    did = await opened(serve)
    await card_says(serve, did, "awaiting approval")
    # Erin is break-glass through the @oncall user group: the first lookup of it fails.
    await fail_next(serve, "usergroups.users.list")
    await serve.click(driver, did, None, actions.CANCEL, "U0ERIN")
    said = await told(serve, "U0ERIN", "cannot check the approver group oncall", "try again")
    assert "not allowed" not in said.lower()
    assert "awaiting approval" in str(serve.thread_messages(did).get("card")).lower()
    # The same button on the same rendering: its key was given back, so this click acts.
    await serve.click(driver, did, None, actions.CANCEL, "U0ERIN")
    await card_says(serve, did, "cancelled")
    await told(serve, "U0ERIN", "cancelled")
