"""The terminal transcript of a thread: what a person reads, from the blocks the bot really sent.

The bot's renderer (``bot.slack.thread.plan``) draws one deployment's whole life; each message is
posted to the Slack emulator through the real ``AsyncWebClient`` as the notifier does (a key seen
again is a ``chat.update``), and read back through the emulator's control API, as the sandbox will.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import User, create_slack_app, emulator_of
from bot.sandbox.story import (
    ButtonNumbers,
    Directory,
    Mrkdwn,
    Options,
    Progress,
    Style,
    Thread,
    live_lines,
    pressable,
    progress_line,
    render_thread,
    threads_of,
)
from bot.slack import actions
from bot.slack.outgoing import CARD
from tests.slack.scenario import REQUESTER, Words, life, run

CHANNEL = "C0DEPLOYS"


@pytest.fixture
def slack() -> Iterator[ServerThread]:
    with ServerThread(create_slack_app(rate_limits=False), name="slack") as server:
        emulator_of(server.app).add_user(User(REQUESTER, "ann", "Ann Requester"))
        yield server


@pytest.fixture
async def client(slack: ServerThread) -> AsyncIterator[AsyncWebClient]:
    yield AsyncWebClient(token="xoxb-sandbox", base_url=f"{slack.url}/api/", timeout=10)


async def control(slack: ServerThread, path: str) -> Any:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{slack.url}/_sandbox/{path}") as response,
    ):
        return await response.json()


async def directory(slack: ServerThread) -> Directory:
    workspace = await control(slack, "workspace")
    return Directory(
        users={u["id"]: u["name"] for u in workspace["users"]},
        usergroups={g["id"]: g["handle"] for g in workspace["usergroups"]},
        channels={c["id"]: c["name"] for c in workspace["channels"]},
    )


async def the_thread(slack: ServerThread) -> Thread:
    messages = (await control(slack, f"messages?channel={CHANNEL}"))["messages"]
    (thread,) = threads_of(messages).values()
    return thread


async def play(
    slack: ServerThread, client: AsyncWebClient, words: Words | None = None
) -> AsyncIterator[Thread]:
    """Post each plan's messages as the notifier would; the thread read back after each plan."""
    posted: dict[str, str] = {}
    for _, plan in run(life(words or Words())):
        if not plan.thread:
            continue
        for message in plan.thread:
            content = {"text": message.text, "blocks": list(message.blocks)}
            if message.key in posted:
                await client.chat_update(channel=CHANNEL, ts=posted[message.key], **content)
            elif message.key == CARD:
                posted[CARD] = (await client.chat_postMessage(channel=CHANNEL, **content))["ts"]
            else:
                answer = await client.chat_postMessage(channel=CHANNEL, thread_ts=posted[CARD], **content)
                posted[message.key] = answer["ts"]
        yield await the_thread(slack)


async def final(slack: ServerThread, client: AsyncWebClient) -> Thread:
    threads = [thread async for thread in play(slack, client)]
    return threads[-1]


async def test_a_thread_reads_as_a_person_sees_it_in_slack(
    slack: ServerThread, client: AsyncWebClient
) -> None:
    opts = Options(await directory(slack))
    shown = "\n".join(render_thread(await final(slack, client), opts).lines)
    lines = shown.split("\n")
    assert lines[0] == "shipthread (edited) · 🚀 checkout 1.4.2 → production"
    for expected in (
        "    Phase: ↩️ Rolled back",
        "    Version: `1.4.2` (was `1.4.1`)",
        "    Requested by: @ann",
        "    Stage 1: ✅ approved by @bob, 2024-05-01 14:00 UTC: error ratio too high",
        "    Deployment `d-7`",
        "  ↳ shipthread (edited) · ↩️ Rolled back: `1.4.1` is live again.",
        "      Asked by @ann: error ratio too high",
        "      @bob @U0CAT: please approve or reject.",  # an id nobody registered stays an id
    ):
        assert expected in lines, expected
    assert "Jenkins build #8 (http://jenkins.test/job/checkout/7/)" in shown
    # Markup is read, not shown: no mention syntax, no emphasis markers, no entities.
    for leftover in ("<@", "*Approval needed*", "&lt;", "&amp;", "\x1b["):
        assert leftover not in shown, leftover
    assert "🙋 Approval needed, stage 1" in shown

    quiet = "\n".join(render_thread(await the_thread(slack), Options(opts.directory, urls=False)).lines)
    assert "🔧 Jenkins build #8  📈 error_ratio  📊 Grafana" in quiet and "http" not in quiet


async def test_buttons_are_numbered_for_a_prompt_and_confirm_dialogs_noted(
    slack: ServerThread, client: AsyncWebClient
) -> None:
    opts = Options(await directory(slack), numbers=ButtonNumbers())
    screens = []
    async for thread in play(slack, client):
        screens.append((thread, "\n".join(render_thread(thread, opts).lines)))
    asking = next(text for _, text in screens if "[2 Approve]" in text)
    assert "[1 Cancel]" in asking and "[2 Approve] [3 Reject]" in asking
    held, text = next((t, s) for t, s in screens if "Promote" in s)
    # Numbers stay with their buttons; new buttons get new numbers; a confirm is marked and noted.
    assert "[4 Roll back⚠]" in "\n".join(s for _, s in screens)
    assert "[5 Promote] [6 Abort⚠]" in text and "[7 Promote] [8 Abort⚠]" in text
    assert "⚠ Abort asks first: “Abort in production?” `checkout` `1.4.2` goes back to `1.4.1`" in text
    buttons = pressable(held, opts)
    assert {n: b.action_id for n, b in buttons.items()} == {
        5: actions.PROMOTE,
        6: actions.ABORT,
        7: actions.PROMOTE,
        8: actions.ABORT,
    }
    abort = buttons[6]
    assert abort.channel == CHANNEL and abort.confirm is not None and abort.block_id
    assert abort.message_ts in {m["ts"] for m in held.messages()}
    assert actions.decode(abort.value) is not None


async def test_hostile_text_stays_literal_text(slack: ServerThread, client: AsyncWebClient) -> None:
    words = Words(
        reason="<!channel> & <@U0BOB> see <https://evil.example|the fix>",
        console="\x1b[2J\x1b[31m<!here> owned",
        message="*not bold* _nor italic_ :tada:",
    )
    opts = Options(await directory(slack))
    seen: list[str] = []
    async for thread in play(slack, client, words):
        seen += render_thread(thread, opts).lines
    shown = "\n".join(seen)
    assert "<!channel> & <@U0BOB> see <https://evil.example|the fix>" in shown
    assert "@channel" not in shown and "the fix (https://evil.example)" not in shown
    # The console tail's escape sequences are shown, never sent to the terminal.
    assert "│ ␛[2J␛[31m<!here> owned" in shown and "\x1b" not in shown
    # mrkdwn escaping covers only & < >: Slack would show these as emphasis, and so do we.
    assert "not bold nor italic 🎉" in shown


async def test_live_lines_tell_the_story_without_floods(slack: ServerThread, client: AsyncWebClient) -> None:
    opts = Options(await directory(slack), urls=False)
    printed: list[str] = []
    full_redraws = 0
    previous: Thread | None = None
    async for thread in play(slack, client):
        printed += live_lines(previous, thread, opts)
        full_redraws += len(render_thread(thread, opts).lines)
        previous = thread
    assert live_lines(previous, previous, opts) == [] if previous else False

    new_replies = [line for line in printed if line.startswith("  ↳ ")]
    assert sum("Approval needed" in line for line in new_replies) == 1
    assert sum("QoS guard, canary step 1" in line for line in new_replies) == 1
    # A phase change on the card is one line: the title and the field that moved.
    assert "↻ shipthread · 🚀 checkout 1.4.2 → production — Phase: 🔨 Building" in printed
    # Guard ticks redraw the window reply compactly.
    assert any(line.startswith("  ↻ shipthread · 🛡️ QoS guard") and "tick 2 of 10" in line for line in printed)
    # A failed build's reply shows its console tail when it changes to failed.
    assert "      │ npm ERR! test failed" in printed
    assert len(printed) * 4 < full_redraws, (len(printed), full_redraws)


async def test_colour_only_when_asked(slack: ServerThread, client: AsyncWebClient) -> None:
    thread = await final(slack, client)
    names = await directory(slack)
    plain = "\n".join(render_thread(thread, Options(names)).lines)
    coloured = "\n".join(render_thread(thread, Options(names, colour=True)).lines)
    assert "\x1b[" not in plain
    assert "\x1b[1m🚀 checkout 1.4.2 → production\x1b[22m" in coloured
    assert "\x1b[1;35m@bob\x1b[22;39m" in coloured
    assert "\x1b[36m1.4.1\x1b[39m" in coloured  # inline code: coloured, no backticks


def test_mrkdwn_rules_a_person_expects() -> None:
    md = Mrkdwn(Directory({"U1": "alice"}, {"S1": "sre"}, {"C1": "deploys"}))
    assert (
        md.inline("*bold* _it_ ~gone~ `a *b*` error_ratio 2*3*4") == "bold it gone `a *b*` error_ratio 2*3*4"
    )
    assert md.inline("<@U1> <@U9> <#C1> <!subteam^S1> <!here> <!date^1|May 1>") == (
        "@alice @U9 #deploys @sre @here May 1"
    )
    assert md.inline("<https://x.test/?a=1&amp;b=2|Build &lt;7&gt;> <https://y.test>") == (
        "Build <7> (https://x.test/?a=1&b=2) https://y.test"
    )
    assert md.inline("&amp;lt; stays &lt;: at 10:30:00 :white_check_mark: :no_such_emoji:") == (
        "&lt; stays <: at 10:30:00 ✅ :no_such_emoji:"
    )
    assert md.lines("before\n```\nx < y &amp; *z*\n```\nafter") == ["before", "│ x < y & *z*", "after"]
    coloured = Mrkdwn(style=Style(colour=True))
    assert coloured.inline("*a* _b_") == "\x1b[1ma\x1b[22m \x1b[3mb\x1b[23m"
    assert Mrkdwn().inline("\ue0000\ue001 <@U2>") == "0 @U2"  # our placeholders cannot be forged


def test_progress_redraws_on_a_tty_and_prints_milestones_otherwise() -> None:
    assert (
        progress_line(0.5, "waiting for the guard window") == "[█████░░░░░] 50% waiting for the guard window"
    )
    log = io.StringIO()
    bar = Progress("waiting", log, tty=False)
    for step in range(0, 101, 5):
        bar.update(step / 100)
    bar.finish()
    assert log.getvalue().splitlines() == [
        "[░░░░░░░░░░] 0% waiting",
        "[███░░░░░░░] 25% waiting",
        "[█████░░░░░] 50% waiting",
        "[████████░░] 75% waiting",
        "[██████████] 100% waiting",
    ]
    screen = io.StringIO()
    bar = Progress("waiting", screen, tty=True)
    for done in (0.1, 0.1, 0.2):
        bar.update(done)
    bar.finish("done")
    assert screen.getvalue() == (
        "\r[█░░░░░░░░░] 10% waiting\r[██░░░░░░░░] 20% waiting\r[██████████] 100% done  \n"
    )
