"""The Slack emulator, driven by the real slack-sdk client over real HTTP.

Each test starts its own emulator in a ServerThread with a frozen clock (scale 0), so time moves
only when a test advances it: trigger expiry and rate limits are exact and nothing sleeps. Rate
limits are off unless a test turns them on (a frozen clock never refills a bucket).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import (
    Clock,
    RateLimits,
    SlackEmulator,
    check_message_blocks,
    check_view,
    create_slack_app,
    emulator_of,
    with_ids,
)
from tests.sandbox.slack_requests import reject_modal

TOKEN = "xoxb-sandbox"


class Slack:
    """One running emulator: its state, its URL and a real client pointed at it."""

    def __init__(self, emulator: SlackEmulator, url: str) -> None:
        self.emulator = emulator
        self.url = url
        self.client = AsyncWebClient(token=TOKEN, base_url=f"{url}/api/", timeout=10)

    async def control(self, verb: str, path: str, payload: dict[str, Any] | None = None, **query: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(verb, f"{self.url}/_sandbox/{path}", json=payload, params=query) as response,
        ):
            return response.status, await response.json()

    async def advance(self, seconds: float) -> None:
        status, _ = await self.control("POST", "config", {"clock": {"advance": seconds}})
        assert status == 200

    async def limit(self, **settings: Any) -> None:
        status, _ = await self.control("POST", "config", {"rate_limits": {"enabled": True, **settings}})
        assert status == 200

    async def refusal(self, coro: Any) -> SlackApiError:
        with pytest.raises(SlackApiError) as caught:
            await coro
        return caught.value


@pytest.fixture
def server() -> Iterator[tuple[SlackEmulator, str]]:
    emulator = SlackEmulator(token=TOKEN, clock=Clock(scale=0), rate_limits=False)
    with ServerThread(emulator.app, name="slack") as thread:
        yield emulator, thread.url


@pytest.fixture
async def slack(server: tuple[SlackEmulator, str]) -> AsyncIterator[Slack]:
    yield Slack(*server)


def blocks(n: int) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f"block {i}"}} for i in range(n)]


def modal(title: str = "Reject", **extra: Any) -> dict[str, Any]:
    """The test apps' Reject modal with another title, without metadata unless ``extra`` has some."""
    view = reject_modal()
    del view["private_metadata"]
    return {**view, "title": {"type": "plain_text", "text": title}, **extra}


# -- messages and threads ---------------------------------------------------------------------


async def test_a_thread_reads_back_parent_first_then_replies_oldest_first(slack: Slack) -> None:
    parent = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="deploy checkout 1.4.2")
    first = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="building", thread_ts=parent["ts"])
    status, posted = await slack.control(
        "POST",
        "messages",
        {"channel": "C0DEPLOYS", "user": "U0BOB", "text": "lgtm", "thread_ts": parent["ts"]},
    )
    assert status == 200
    broadcast = await slack.client.chat_postMessage(
        channel="C0DEPLOYS", text="rolled out", thread_ts=parent["ts"], reply_broadcast=True
    )

    thread = (await slack.client.conversations_replies(channel="C0DEPLOYS", ts=parent["ts"]))["messages"]

    assert [m["text"] for m in thread] == ["deploy checkout 1.4.2", "building", "lgtm", "rolled out"]
    head = thread[0]
    assert head["thread_ts"] == parent["ts"]
    assert head["reply_count"] == 3
    assert head["latest_reply"] == broadcast["ts"]
    assert head["reply_users"] == ["U0SHIPBOT", "U0BOB"]
    assert head["reply_users_count"] == 2
    assert all(m["thread_ts"] == parent["ts"] and m["parent_user_id"] == "U0SHIPBOT" for m in thread[1:])
    assert thread[2]["user"] == "U0BOB" and posted["ts"] == thread[2]["ts"]
    assert first["message"]["bot_id"] == "B0SHIPBOT"
    assert float(parent["ts"]) < float(first["ts"]) < float(posted["ts"]) < float(broadcast["ts"])


async def test_history_holds_top_level_messages_and_broadcasts_newest_first(slack: Slack) -> None:
    parent = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="parent")
    await slack.client.chat_postMessage(channel="C0DEPLOYS", text="quiet reply", thread_ts=parent["ts"])
    await slack.client.chat_postMessage(
        channel="C0DEPLOYS", text="loud reply", thread_ts=parent["ts"], reply_broadcast=True
    )
    await slack.client.chat_postMessage(channel="C0DEPLOYS", text="another")
    await slack.client.chat_postMessage(channel="C0GENERAL", text="elsewhere")

    history = await slack.client.conversations_history(channel="C0DEPLOYS")

    assert [m["text"] for m in history["messages"]] == ["another", "loud reply", "parent"]
    assert history["messages"][1]["subtype"] == "thread_broadcast"
    assert history["messages"][1]["root"]["ts"] == parent["ts"]
    assert history["has_more"] is False


async def test_history_pages_with_cursors_and_honours_latest_and_oldest(slack: Slack) -> None:
    posted = [
        (await slack.client.chat_postMessage(channel="C0DEPLOYS", text=f"m{i}"))["ts"] for i in range(5)
    ]

    pages = []
    async for page in await slack.client.conversations_history(channel="C0DEPLOYS", limit=2):
        pages.append([m["text"] for m in page["messages"]])
    assert pages == [["m4", "m3"], ["m2", "m1"], ["m0"]]

    window = await slack.client.conversations_history(channel="C0DEPLOYS", oldest=posted[1], latest=posted[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]
    inclusive = await slack.client.conversations_history(
        channel="C0DEPLOYS", oldest=posted[1], latest=posted[3], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m3", "m2", "m1"]

    refused = await slack.refusal(slack.client.conversations_history(channel="C0DEPLOYS", cursor="bm9wZQ=="))
    assert refused.response["error"] == "invalid_cursor"


async def test_a_channel_is_named_by_id_or_name_and_unknown_ones_are_refused(slack: Slack) -> None:
    by_hash = await slack.client.chat_postMessage(channel="#deploys", text="a")
    by_name = await slack.client.chat_postMessage(channel="deploys", text="b")
    assert by_hash["channel"] == by_name["channel"] == "C0DEPLOYS"

    refused = await slack.refusal(slack.client.chat_postMessage(channel="#nowhere", text="c"))
    assert refused.response.status_code == 200
    assert refused.response["error"] == "channel_not_found"

    status, _ = await slack.control("POST", "channels", {"id": "C0PROD", "name": "prod-deploys"})
    assert status == 200
    posted = await slack.client.chat_postMessage(channel="#prod-deploys", text="now it exists")
    assert posted["channel"] == "C0PROD"
    info = await slack.client.conversations_info(channel="C0PROD")
    assert info["channel"]["name"] == "prod-deploys" and info["channel"]["is_member"] is True


async def test_the_bot_edits_only_its_own_messages(slack: Slack) -> None:
    mine = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="v1", blocks=blocks(1))
    updated = await slack.client.chat_update(channel="C0DEPLOYS", ts=mine["ts"], text="v2")
    assert updated["ts"] == mine["ts"] and updated["text"] == "v2"

    history = (await slack.client.conversations_history(channel="C0DEPLOYS"))["messages"]
    assert history[0]["text"] == "v2"
    assert history[0]["edited"]["user"] == "U0SHIPBOT"
    assert history[0]["blocks"][0]["text"]["text"] == "block 0", "blocks left out of chat.update are kept"

    _, theirs = await slack.control(
        "POST", "messages", {"channel": "C0DEPLOYS", "user": "U0ALICE", "text": "hi"}
    )
    refused = await slack.refusal(slack.client.chat_update(channel="C0DEPLOYS", ts=theirs["ts"], text="x"))
    assert refused.response["error"] == "cant_update_message"
    refused = await slack.refusal(slack.client.chat_delete(channel="C0DEPLOYS", ts=theirs["ts"]))
    assert refused.response["error"] == "cant_delete_message"
    refused = await slack.refusal(slack.client.chat_update(channel="C0DEPLOYS", ts="1.000001", text="x"))
    assert refused.response["error"] == "message_not_found"


async def test_deleting_a_parent_with_replies_leaves_a_tombstone(slack: Slack) -> None:
    parent = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="parent")
    reply = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="reply", thread_ts=parent["ts"])
    lonely = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="lonely")

    await slack.client.chat_delete(channel="C0DEPLOYS", ts=lonely["ts"])
    await slack.client.chat_delete(channel="C0DEPLOYS", ts=parent["ts"])

    history = (await slack.client.conversations_history(channel="C0DEPLOYS"))["messages"]
    assert [m.get("subtype") for m in history] == ["tombstone"]
    thread = (await slack.client.conversations_replies(channel="C0DEPLOYS", ts=parent["ts"]))["messages"]
    assert [m["ts"] for m in thread] == [parent["ts"], reply["ts"]]
    refused = await slack.refusal(slack.client.chat_delete(channel="C0DEPLOYS", ts=lonely["ts"]))
    assert refused.response["error"] == "message_not_found"


async def test_a_reply_to_a_reply_is_accepted_and_lost_as_on_slack(slack: Slack) -> None:
    parent = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="parent")
    reply = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="reply", thread_ts=parent["ts"])

    stray = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="stray", thread_ts=reply["ts"])

    assert stray["ok"] is True
    thread = (await slack.client.conversations_replies(channel="C0DEPLOYS", ts=parent["ts"]))["messages"]
    assert "stray" not in [m["text"] for m in thread]
    _, listed = await slack.control("GET", "messages", channel="C0DEPLOYS")
    assert [m["text"] for m in listed["messages"] if m.get("orphaned")] == ["stray"]


async def test_ephemeral_messages_stay_out_of_history(slack: Slack) -> None:
    answer = await slack.client.chat_postEphemeral(channel="C0DEPLOYS", user="U0ALICE", text="only you")
    assert answer["message_ts"]

    assert (await slack.client.conversations_history(channel="C0DEPLOYS"))["messages"] == []
    _, seen = await slack.control("GET", "ephemeral", channel="C0DEPLOYS", user="U0ALICE")
    assert [(m["text"], m["ts"]) for m in seen["messages"]] == [("only you", answer["message_ts"])]
    refused = await slack.refusal(
        slack.client.chat_postEphemeral(channel="C0DEPLOYS", user="U0NOBODY", text="x")
    )
    assert refused.response["error"] == "user_not_in_channel"


async def test_permalinks_name_the_message_and_its_thread(slack: Slack) -> None:
    parent = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="parent")
    reply = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="reply", thread_ts=parent["ts"])

    top = await slack.client.chat_getPermalink(channel="C0DEPLOYS", message_ts=parent["ts"])
    nested = await slack.client.chat_getPermalink(channel="C0DEPLOYS", message_ts=reply["ts"])

    assert top["permalink"] == (
        f"https://shipthread-sandbox.slack.com/archives/C0DEPLOYS/p{parent['ts'].replace('.', '')}"
    )
    assert nested["permalink"].endswith(f"?thread_ts={parent['ts']}&cid=C0DEPLOYS")
    refused = await slack.refusal(slack.client.chat_getPermalink(channel="C0DEPLOYS", message_ts="1.000001"))
    assert refused.response["error"] == "message_not_found"


async def test_a_reaction_is_added_once(slack: Slack) -> None:
    posted = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="shipped")
    await slack.client.reactions_add(channel="C0DEPLOYS", timestamp=posted["ts"], name="rocket")

    refused = await slack.refusal(
        slack.client.reactions_add(channel="C0DEPLOYS", timestamp=posted["ts"], name="rocket")
    )

    assert refused.response["error"] == "already_reacted"
    history = (await slack.client.conversations_history(channel="C0DEPLOYS"))["messages"]
    assert history[0]["reactions"] == [{"name": "rocket", "users": ["U0SHIPBOT"], "count": 1}]


# -- arguments, auth and the envelope ---------------------------------------------------------


async def test_a_wrong_or_missing_token_is_refused(slack: Slack) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=f"{slack.url}/api/")
    refused = await slack.refusal(wrong.chat_postMessage(channel="C0DEPLOYS", text="x"))
    assert (refused.response.status_code, refused.response["error"]) == (200, "invalid_auth")

    nobody = AsyncWebClient(base_url=f"{slack.url}/api/")
    refused = await slack.refusal(nobody.auth_test())
    assert refused.response["error"] == "not_authed"


async def test_a_form_body_carries_the_token_and_blocks_as_json_strings(slack: Slack) -> None:
    form = {
        "token": TOKEN,
        "channel": "C0DEPLOYS",
        "text": "from a form",
        "blocks": json.dumps(blocks(2)),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.url}/api/chat.postMessage", data=form) as r,
    ):
        answer = await r.json()
    assert answer["ok"] is True
    assert [b["text"]["text"] for b in answer["message"]["blocks"]] == ["block 0", "block 1"]
    assert all(b["block_id"] for b in answer["message"]["blocks"]), "Slack gives every block an id"

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"channel": "C0DEPLOYS", "text": "no charset"})
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slack.url}/api/chat.postMessage", data=body, headers=headers) as r,
    ):
        answer = await r.json()
    assert answer["ok"] is True and answer["warning"] == "missing_charset"

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{slack.url}/api/chat.postMessage",
            data=json.dumps({"token": TOKEN, "channel": "C0DEPLOYS"}),
            headers={"Content-Type": "application/json; charset=utf-8"},
        ) as r,
    ):
        answer = await r.json()
    assert answer == {"ok": False, "error": "not_authed"}, "a JSON body's token is ignored, as on Slack"


async def test_an_unknown_method_and_missing_arguments_are_named(slack: Slack) -> None:
    refused = await slack.refusal(slack.client.api_call("deployments.launch"))
    assert refused.response.status_code == 200
    assert refused.response.data == {
        "ok": False,
        "error": "unknown_method",
        "req_method": "deployments.launch",
    }

    refused = await slack.refusal(slack.client.api_call("conversations.history", http_verb="GET", params={}))
    assert refused.response["error"] == "invalid_arguments"
    assert refused.response["response_metadata"]["messages"] == ["[ERROR] missing required field: channel"]

    with pytest.warns(UserWarning, match="text"):  # slack-sdk's own warning, before it sends
        refused = await slack.refusal(slack.client.chat_postMessage(channel="C0DEPLOYS"))
    assert refused.response["error"] == "no_text"


async def test_text_over_40000_characters_is_truncated_with_a_warning(slack: Slack) -> None:
    posted = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="x" * 40_010)

    assert posted["warning"] == "message_truncated"
    assert posted["response_metadata"]["warnings"] == ["message_truncated"]
    assert len(posted["message"]["text"]) == 40_000


async def test_51_blocks_are_invalid_blocks_with_slacks_explanation(slack: Slack) -> None:
    refused = await slack.refusal(
        slack.client.chat_postMessage(channel="C0DEPLOYS", text="t", blocks=blocks(51))
    )

    assert refused.response["error"] == "invalid_blocks"
    assert refused.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]
    assert (await slack.client.chat_postMessage(channel="C0DEPLOYS", text="t", blocks=blocks(50)))["ok"]


async def test_block_limits_apply_to_updates_and_ephemerals(slack: Slack) -> None:
    posted = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="t")
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}]

    for attempt in (
        slack.client.chat_update(channel="C0DEPLOYS", ts=posted["ts"], text="t", blocks=long_section),
        slack.client.chat_postEphemeral(channel="C0DEPLOYS", user="U0BOB", text="t", blocks=long_section),
    ):
        refused = await slack.refusal(attempt)
        assert refused.response["error"] == "invalid_blocks"
        assert refused.response["errors"] == [
            "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
        ]


async def test_every_call_is_logged_without_its_token(slack: Slack) -> None:
    await slack.client.chat_postMessage(channel="C0DEPLOYS", text="one")
    await slack.refusal(slack.client.chat_postMessage(channel="C0NOPE", text="two"))
    await slack.client.auth_test()

    _, logged = await slack.control("GET", "calls", method="chat.postMessage")

    assert [(c["args"]["text"], c["ok"], c["error"]) for c in logged["calls"]] == [
        ("one", True, None),
        ("two", False, "channel_not_found"),
    ]
    assert all("token" not in c["args"] for c in logged["calls"])
    assert [c["method"] for c in slack.emulator.calls()] == [
        "chat.postMessage",
        "chat.postMessage",
        "auth.test",
    ]


# -- rate limits ------------------------------------------------------------------------------


async def test_a_burst_to_one_channel_gets_429_with_retry_after(slack: Slack) -> None:
    await slack.limit()
    outcomes = []
    for i in range(20):
        try:
            await slack.client.chat_postMessage(channel="C0DEPLOYS", text=f"burst {i}")
            outcomes.append("ok")
        except SlackApiError as refused:
            assert refused.response.status_code == 429
            assert refused.response.headers["Retry-After"] == "1"
            assert refused.response["error"] == "ratelimited"
            outcomes.append("429")

    assert outcomes == ["ok"] * 4 + ["429"] * 16, "a burst of 4, then one a second"
    assert (await slack.client.chat_postMessage(channel="C0GENERAL", text="other channel"))["ok"]
    await slack.advance(1)
    assert (await slack.client.chat_postMessage(channel="C0DEPLOYS", text="a second later"))["ok"]
    await slack.refusal(slack.client.chat_postMessage(channel="C0DEPLOYS", text="too soon"))


async def test_tier_2_methods_allow_20_calls_a_minute(slack: Slack) -> None:
    await slack.limit()
    for _ in range(20):
        await slack.client.usergroups_list()

    refused = await slack.refusal(slack.client.usergroups_list())

    assert refused.response.status_code == 429
    assert refused.response.headers["Retry-After"] == "60"
    assert (await slack.client.users_info(user="U0BOB"))["ok"], "other methods have their own window"
    await slack.advance(60)
    assert (await slack.client.usergroups_list())["ok"]


async def test_rate_limits_are_configurable_at_creation_and_through_the_control_api(slack: Slack) -> None:
    status, config = await slack.control(
        "POST", "config", {"rate_limits": {"enabled": True, "post_burst": 2, "tiers": {"2": 3}}}
    )
    assert status == 200 and config["rate_limits"]["post_burst"] == 2
    results = []
    for _ in range(3):
        try:
            await slack.client.chat_postMessage(channel="C0DEPLOYS", text="x")
            results.append(True)
        except SlackApiError:
            results.append(False)
    assert results == [True, True, False]
    for _ in range(3):
        await slack.client.usergroups_list()
    await slack.refusal(slack.client.usergroups_list())

    await slack.control("POST", "config", {"rate_limits": {"enabled": False}})
    for _ in range(30):
        await slack.client.chat_postMessage(channel="C0DEPLOYS", text="unlimited")

    status, bad = await slack.control("POST", "config", {"rate_limits": {"post_burst": 0}})
    assert status == 400 and "post_burst" in bad["error"]

    assert SlackEmulator().limiter.limits.enabled is True
    custom = emulator_of(create_slack_app(rate_limits=RateLimits(post_burst=9)))
    assert custom.limiter.limits.post_burst == 9


# -- views ----------------------------------------------------------------------------------------


async def test_a_trigger_opens_one_modal_within_three_seconds(slack: Slack) -> None:
    trigger = slack.emulator.issue_trigger("U0BOB")
    opened = await slack.client.views_open(trigger_id=trigger, view=modal())
    view = opened["view"]
    assert view["id"].startswith("V") and view["root_view_id"] == view["id"]
    assert view["state"] == {"values": {}} and view["hash"]

    reused = await slack.refusal(slack.client.views_open(trigger_id=trigger, view=modal()))
    assert reused.response["error"] == "exchanged_trigger_id"

    _, late = await slack.control("POST", "triggers", {"user_id": "U0BOB"})
    await slack.advance(3.5)
    expired = await slack.refusal(slack.client.views_open(trigger_id=late["trigger_id"], view=modal()))
    assert expired.response["error"] == "expired_trigger_id"

    unknown = await slack.refusal(slack.client.views_open(trigger_id="1.2.3", view=modal()))
    assert unknown.response["error"] == "invalid_trigger_id"


async def test_views_update_checks_the_hash_and_finds_views_by_external_id(slack: Slack) -> None:
    opened = await slack.client.views_open(
        trigger_id=slack.emulator.issue_trigger("U0BOB"), view=modal(external_id="reject-42")
    )
    view = opened["view"]

    updated = await slack.client.views_update(view_id=view["id"], hash=view["hash"], view=modal("Sure?"))
    assert updated["view"]["title"]["text"] == "Sure?" and updated["view"]["hash"] != view["hash"]

    stale = await slack.refusal(
        slack.client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    )
    assert stale.response["error"] == "hash_conflict"

    by_external = await slack.client.views_update(
        external_id="reject-42", view=modal("Again", external_id="reject-42")
    )
    assert by_external["view"]["id"] == view["id"]
    missing = await slack.refusal(slack.client.views_update(view_id="VNOPE", view=modal()))
    assert missing.response["error"] == "not_found"


async def test_views_push_stacks_up_to_three_modals(slack: Slack) -> None:
    root = (await slack.client.views_open(trigger_id=slack.emulator.issue_trigger("U0BOB"), view=modal()))[
        "view"
    ]
    second = await slack.client.views_push(
        trigger_id=slack.emulator.issue_trigger("U0BOB"), view=modal("Two")
    )
    third = await slack.client.views_push(
        trigger_id=slack.emulator.issue_trigger("U0BOB"), view=modal("Three")
    )
    assert second["view"]["previous_view_id"] == root["id"] and third["view"]["root_view_id"] == root["id"]

    refused = await slack.refusal(
        slack.client.views_push(trigger_id=slack.emulator.issue_trigger("U0BOB"), view=modal("Four"))
    )
    assert refused.response["error"] == "push_limit_reached"


async def test_view_limits_are_enforced_with_json_pointers(slack: Slack) -> None:
    refused = await slack.refusal(
        slack.client.views_open(trigger_id=slack.emulator.issue_trigger("U0BOB"), view=modal("x" * 25))
    )
    assert refused.response["error"] == "invalid_arguments"
    assert refused.response["response_metadata"]["messages"] == [
        "[ERROR] failed to match all allowed schemas [json-pointer:/view]",
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]",
    ]

    home = {"type": "home", "blocks": blocks(101), "private_metadata": "m" * 3001}
    refused = await slack.refusal(slack.client.views_publish(user_id="U0ALICE", view=home))
    assert refused.response["response_metadata"]["messages"][1:] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]",
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]",
    ]


async def test_the_home_tab_is_published_per_user_with_100_blocks(slack: Slack) -> None:
    first = await slack.client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": blocks(100)})
    again = await slack.client.views_publish(
        user_id="U0ALICE", hash=first["view"]["hash"], view={"type": "home", "blocks": blocks(1)}
    )
    assert again["view"]["id"] == first["view"]["id"] and len(again["view"]["blocks"]) == 1

    stale = await slack.refusal(
        slack.client.views_publish(
            user_id="U0ALICE", hash=first["view"]["hash"], view={"type": "home", "blocks": []}
        )
    )
    assert stale.response["error"] == "hash_conflict"
    modal_as_home = await slack.refusal(slack.client.views_publish(user_id="U0ALICE", view=modal()))
    assert modal_as_home.response["error"] == "invalid_arguments"


# -- users and user groups --------------------------------------------------------------------


async def test_users_and_usergroups_come_from_the_control_api(slack: Slack) -> None:
    status, _ = await slack.control(
        "POST",
        "users",
        {"id": "U0DAVE", "name": "dave", "real_name": "Dave Lead", "email": "Dave@Example.com"},
    )
    assert status == 200
    await slack.control(
        "POST", "usergroups", {"id": "S0LEADS", "handle": "leads", "name": "Leads", "users": ["U0DAVE"]}
    )

    info = await slack.client.users_info(user="U0DAVE")
    assert info["user"]["real_name"] == "Dave Lead" and info["user"]["profile"]["email"] == "Dave@Example.com"
    found = await slack.client.users_lookupByEmail(email="dave@example.com")
    assert found["user"]["id"] == "U0DAVE"
    nobody = await slack.refusal(slack.client.users_lookupByEmail(email="nobody@example.com"))
    assert nobody.response["error"] == "users_not_found"
    unknown = await slack.refusal(slack.client.users_info(user="U0NOBODY"))
    assert unknown.response["error"] == "user_not_found"

    groups = await slack.client.usergroups_list(include_users=True)
    by_handle = {g["handle"]: g for g in groups["usergroups"]}
    assert by_handle["leads"]["users"] == ["U0DAVE"] and by_handle["leads"]["user_count"] == 1
    assert by_handle["deploy-approvers"]["users"] == ["U0BOB", "U0CAROL"]
    members = await slack.client.usergroups_users_list(usergroup="S0LEADS")
    assert members["users"] == ["U0DAVE"]
    missing = await slack.refusal(slack.client.usergroups_users_list(usergroup="S0NOPE"))
    assert missing.response["error"] == "no_such_subteam"

    status, bad = await slack.control("POST", "usergroups", {"id": "X1", "handle": "x"})
    assert status == 400 and "starts with S" in bad["error"]


async def test_reset_forgets_messages_and_registered_users(slack: Slack) -> None:
    await slack.client.chat_postMessage(channel="C0DEPLOYS", text="before")
    await slack.control("POST", "users", {"id": "U0TEMP", "name": "temp"})

    status, _ = await slack.control("POST", "reset")

    assert status == 200
    assert (await slack.client.conversations_history(channel="C0DEPLOYS"))["messages"] == []
    assert (await slack.refusal(slack.client.users_info(user="U0TEMP"))).response["error"] == "user_not_found"
    _, calls = await slack.control("GET", "calls")
    assert [c["method"] for c in calls["calls"]] == ["conversations.history", "users.info"]


# -- response_url -----------------------------------------------------------------------------


async def test_a_response_url_posts_replaces_and_wears_out(slack: Slack) -> None:
    parent = await slack.client.chat_postMessage(channel="C0DEPLOYS", text="approve?")
    _, issued = await slack.control(
        "POST", "response_urls", {"channel_id": "C0DEPLOYS", "user_id": "U0BOB", "message_ts": parent["ts"]}
    )
    url = issued["response_url"]
    assert url.startswith(f"{slack.url}/_sandbox/response/")

    async def respond(payload: dict[str, Any]) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.post(url, json=payload) as r:
            return r.status, await r.json()

    assert await respond({"text": "only for bob"}) == (200, {"ok": True})
    assert await respond({"text": "for all", "response_type": "in_channel"}) == (200, {"ok": True})
    assert await respond({"text": "approved", "replace_original": True}) == (200, {"ok": True})
    status, refused = await respond({"blocks": blocks(51)})
    assert (status, refused["error"]) == (400, "invalid_blocks")
    assert await respond({"delete_original": True}) == (200, {"ok": True})
    assert await respond({"text": "sixth"}) == (404, {"ok": False, "error": "used_url"})

    history = (await slack.client.conversations_history(channel="C0DEPLOYS"))["messages"]
    assert [m["text"] for m in history] == ["for all"]
    _, seen = await slack.control("GET", "ephemeral", user="U0BOB")
    assert [m["text"] for m in seen["messages"]] == ["only for bob"]
    _, log = await slack.control("GET", "response_urls")
    assert [u["status"] for u in log["response_urls"][0]["uses"]] == [200, 200, 200, 400, 200]


async def test_a_response_url_expires_after_30_minutes(slack: Slack) -> None:
    url = slack.emulator.issue_response_url(slack.url, channel_id="C0DEPLOYS", user_id="U0BOB")
    await slack.advance(30 * 60 + 1)

    async with aiohttp.ClientSession() as session, session.post(url, json={"text": "late"}) as r:
        assert (r.status, await r.json()) == (404, {"ok": False, "error": "expired_url"})


# -- Block Kit limits, one by one (pure) --------------------------------------------------------


def button(text: str = "Go", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": "go", **extra}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (
            [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
            "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        ),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]",
        ),
        (
            [{"type": "actions", "elements": [button("b" * 76)]}],
            "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
        ),
        (
            [{"type": "actions", "elements": [button(value="v" * 2001)]}],
            "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]",
        ),
        (
            [{"type": "actions", "elements": [button(action_id="a" * 256)]}],
            "must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]",
        ),
        (
            [{"type": "divider", "block_id": "b" * 256}],
            "must be less than 256 characters [json-pointer:/blocks/0/block_id]",
        ),
        (
            [{"type": "actions", "elements": [{**button(), "action_id": f"a{i}"} for i in range(26)]}],
            "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
        ),
        (
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
        ),
        ([{"type": "carousel"}], "unsupported type: carousel [json-pointer:/blocks/0/type]"),
        (
            [{"type": "divider", "block_id": "x"}, {"type": "divider", "block_id": "x"}],
            "duplicate block_id: x [json-pointer:/blocks/1/block_id]",
        ),
        (
            [{"type": "actions", "elements": [button(), button()]}],
            "duplicate action_id: go [json-pointer:/blocks/0/elements/1/action_id]",
        ),
    ],
)
def test_each_block_kit_limit_is_named_where_it_is_broken(payload: list[Any], problem: str) -> None:
    assert problem in check_message_blocks(payload)


def test_a_modal_keeps_its_title_buttons_callback_id_and_metadata_within_limits() -> None:
    view = modal("t" * 24, close={"type": "plain_text", "text": "c" * 25}, callback_id="c" * 256)
    assert check_view(view, kinds=frozenset({"modal"}))[1:] == [
        "must be less than 25 characters [json-pointer:/view/close/text]",
        "must be less than 256 characters [json-pointer:/view/callback_id]",
    ]
    assert check_view(modal("t" * 24, private_metadata="m" * 3000)) == []
    no_submit = {**modal(), "submit": None}
    assert check_view(no_submit)[-1] == (
        "must define `submit` to use an `input` block in modals [json-pointer:/view/blocks/0]"
    )


def test_stored_blocks_get_ids_and_the_input_is_left_alone() -> None:
    given = [
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Go"}}]}
    ]
    ids = iter(["b1", "a1"])

    stored = with_ids(given, lambda: next(ids))

    assert stored[0]["block_id"] == "b1"
    assert stored[0]["elements"][0]["action_id"] == "a1"
    assert stored[0]["elements"][0]["text"]["emoji"] is True
    assert "block_id" not in given[0]


def test_the_clock_runs_scaled_frozen_or_moved_forward() -> None:
    real = [1000.0]
    clock = Clock(start=50.0, scale=10, source=lambda: real[0])

    real[0] += 2
    assert clock.now() == 70.0
    clock.set_scale(0)
    real[0] += 100
    assert clock.now() == 70.0
    clock.advance(3.5)
    assert clock.now() == 73.5
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
