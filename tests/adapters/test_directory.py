"""Approver groups through Slack user groups: a Slack blip is never "nobody is an approver".

The real resolver (slack-sdk over HTTP) against the Slack emulator, whose control API makes
``usergroups.users.list`` fail on demand; the directory's clock is injected to age its cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.directory import ConfigDirectory
from bot.adapters.slack_usergroups import usergroup_resolver
from bot.errors import PermanentError, TransientError
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import Usergroup, create_slack_app, emulator_of

ONCALL = Usergroup("S0ONCALL", "oncall", "On call", ("U0ERIN", "U0DAVE"))
GROUPS = {"oncall": ["@oncall"], "sre": ["U0BOB", "S0ONCALL"], "ghosts": ["@nobody-has-this"]}


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slack() -> Iterator[ServerThread]:
    with ServerThread(create_slack_app(rate_limits=False), name="slack") as server:
        emulator_of(server.app).add_usergroup(ONCALL)
        yield server


@pytest.fixture
async def client(slack: ServerThread) -> AsyncIterator[AsyncWebClient]:
    yield AsyncWebClient(token="xoxb-sandbox", base_url=f"{slack.url}/api/", timeout=5)


async def fail(slack: ServerThread, calls: int, status: int = 503, methods: tuple[str, ...] = ()) -> None:
    """The emulator's control API: the next ``calls`` Web API calls (of ``methods``) answer ``status``."""
    payload = {"mode": "error", "calls": calls, "status": status, "methods": list(methods)}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.post(f"{slack.url}/_sandbox/faults", json=payload) as response,
    ):
        assert response.status == 200, await response.text()


async def test_a_failed_lookup_raises_is_not_cached_and_the_next_one_answers(
    slack: ServerThread, client: AsyncWebClient
) -> None:
    directory = ConfigDirectory(GROUPS, usergroup_resolver(client), clock=Ticks())
    await fail(slack, 1, methods=("usergroups.users.list",))
    with pytest.raises(TransientError, match="cannot check the approver group oncall now"):
        await directory.members("oncall")
    assert await directory.members("oncall") == {"U0ERIN", "U0DAVE"}


async def test_while_slack_fails_the_last_good_answer_is_served(
    slack: ServerThread, client: AsyncWebClient
) -> None:
    ticks = Ticks()
    directory = ConfigDirectory(GROUPS, usergroup_resolver(client), ttl_s=300, clock=ticks)
    assert await directory.members("sre") == {"U0BOB", "U0ERIN", "U0DAVE"}
    ticks.now += 3600  # long past the TTL, and Slack is down
    await fail(slack, 5)
    assert await directory.members("sre") == {"U0BOB", "U0ERIN", "U0DAVE"}
    assert await directory.members("sre") == {"U0BOB", "U0ERIN", "U0DAVE"}  # each call asks Slack again


async def test_a_group_never_resolved_while_slack_is_down_is_a_transient_error(
    slack: ServerThread, client: AsyncWebClient
) -> None:
    directory = ConfigDirectory(GROUPS, usergroup_resolver(client), clock=Ticks())
    await fail(slack, 10, status=500)
    with pytest.raises(TransientError):
        await directory.members("oncall")
    with pytest.raises(TransientError):
        await directory.members("oncall")  # a failure is not an answer: Slack is asked again


async def test_an_unknown_handle_is_an_empty_group_not_a_failure(client: AsyncWebClient) -> None:
    directory = ConfigDirectory(GROUPS, usergroup_resolver(client), clock=Ticks())
    assert await directory.members("ghosts") == frozenset()
    assert await directory.members("nobody-configured-this") == frozenset()


async def test_a_bad_token_is_permanent(slack: ServerThread) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=f"{slack.url}/api/", timeout=5)
    directory = ConfigDirectory(GROUPS, usergroup_resolver(bad), clock=Ticks())
    with pytest.raises(PermanentError):
        await directory.members("oncall")
