"""``shipthread sandbox``: the whole story of Shipthread, played as its people live it, in a terminal.

Everything runs for real (``stack``): the Slack, Jenkins and Kubernetes emulators, the demo
service, the Debian Prometheus and ``shipthread serve`` as its own process. The story then does
only what people do in Slack — signed slash commands and button clicks (``SlackDriver``) — and
judges each step only by what Slack shows afterwards (``screen``): the card's phase, a reply,
an ephemeral answer. Each thread is printed live as it changes, rendered from the blocks the bot
really sent.

The story: a staging deploy; a production canary with two approval stages, the requester's own
approval refused, a Reject with a reason and a retry that bob and carol approve; a bad release
caught by the guard and rolled back by itself; the environment guard-locked, a deploy refused
while locked, then unlocked by the clean post-rollback window; ``/deploy history``.

Each step waits, with a deadline and a progress bar, for what it expects; if it does not happen
the story stops with ``expected …, saw …`` and exit code 1. Without Prometheus it says so, plays
the steps that need no guard (``prometheus_choice``) and says which it left out: a guard verdict
is never invented.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from bot.sandbox.slack import SlackDriver
from bot.sandbox.story import files as story_files
from bot.sandbox.story.mrkdwn import Style
from bot.sandbox.story.processes import StackError
from bot.sandbox.story.prometheus_choice import GUARDED_STEPS, prometheus_binary, without_prometheus
from bot.sandbox.story.screen import Screen, Waiting, text_input
from bot.sandbox.story.stack import INSTALL_PROMETHEUS, SandboxStack
from bot.sandbox.story.transcript import Thread

POLL_S: Final = 0.2
SETTLE_S: Final = 3.0
"""How long a wait goes on once what it awaits can no longer come: a reply the bot sent just before a
card's redraw may still land after it (the notifier sends a phase change first when Slack's allowance
is short)."""
APPROVING: Final = ("Requested", "Awaiting approval")
"""The card's phases while approvals are asked: phases only move forward, so past them no stage is asked."""
ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"
CHANNEL: Final = story_files.CHANNELS["deploys"]
GOOD, BAD, NEXT = "1.4.2", "1.5.0-bad", "1.5.1"
REASON: Final = "The migration note is missing from the release notes"


class StoryFailed(Exception):
    """A step did not happen as expected."""

    def __init__(self, step: str, expected: str, saw: str) -> None:
        super().__init__(f"{step}: expected {expected}, saw {saw}")
        self.step, self.expected, self.saw = step, expected, saw


@dataclass(frozen=True)
class Expect:
    """What must become true in Slack, and what to report as seen while it is not."""

    what: str
    check: Callable[[], str | None]
    """None when met; otherwise what is seen instead (for the failure message)."""
    hopeless: Callable[[], bool] | None = None
    """True once it can no longer be met: the story then fails after ``SETTLE_S``, not at its timeout."""


def _phase(card: str) -> str | None:
    """The phase a card shows (``Phase: ⏳ Awaiting approval`` → ``Awaiting approval``), None if none."""
    for line in card.splitlines():
        _, label, shown = line.partition("Phase: ")
        if label:
            return shown.partition(" ")[2].strip() or None
    return None


def _short(text: str, limit: int = 300) -> str:
    flat = " ⏎ ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Story:
    """The steps, played through ``driver`` and judged through ``screen``."""

    def __init__(self, stack: SandboxStack, screen: Screen, driver: SlackDriver, *, guarded: bool) -> None:
        self.stack, self.screen, self.driver, self.guarded = stack, screen, driver, guarded
        self.style = Style(screen.colour)
        self.step = "start"
        self.started = time.monotonic()

    # -- doing -----------------------------------------------------------------------------------

    def chapter(self, title: str) -> None:
        self.screen.say("")
        self.screen.say(self.style.bold(f"▶ {title}"))

    async def command(self, user: str, text: str, command: str = "/deploy") -> None:
        name = self.screen.directory.users.get(user, user)
        self.step = f"{name} types {command} {text}"
        self.screen.say(self.style.bold(f"{name}> {command} {text}"))
        answer = await self.driver.slash_command(command, text, user_id=user, channel_id=CHANNEL)
        if answer.status != 200:
            raise StoryFailed(self.step, "Slack's request to be acked (HTTP 200)", f"HTTP {answer.status}")

    async def press(self, user: str, thread: str, label: str, *, on: str | None = None) -> None:
        """``user`` presses the newest [label] in the thread; with ``on``, the newest on a message
        that shows those words, waiting for that message (an older one's button may still be drawn)."""
        name = self.screen.directory.users.get(user, user)
        self.step = f"{name} presses [{label}]"
        where = f"a [{label}] button " + (f"on a message showing “{on}”" if on else "in the thread")
        await self.until(Expect(where, lambda: self._has_button(thread, label, on)))
        button = self.screen.button(self._thread(thread), label, on)
        assert button is not None
        self.screen.say(self.style.bold(f"{name} presses [{label}]"))
        answer = await self.driver.click_button(button.channel, button.message_ts, button.action_id, user)
        if answer.status != 200:
            raise StoryFailed(self.step, "the click to be acked (HTTP 200)", f"HTTP {answer.status}")

    async def submit_reason(self, user: str, reason: str) -> None:
        name = self.screen.directory.users.get(user, user)
        self.step = f"{name} gives a reason in the modal"
        views: list[dict[str, object]] = []

        async def opened() -> str | None:
            views[:] = await self.screen.views(user)
            return None if views else "no modal open"

        await self.until_async(f"a modal to open for {name}", opened)
        view = views[-1]
        field = text_input(view)
        values = {field[0]: {field[1]: reason}} if field else {}
        self.screen.say(self.style.bold(f"{name} types the reason “{reason}” and presses Submit"))
        await self.driver.submit_view(str(view["id"]), values, user_id=user)

    # -- waiting ---------------------------------------------------------------------------------

    async def until(self, expect: Expect, timeout: float = 30.0) -> None:
        async def check() -> str | None:
            return expect.check()

        await self.until_async(expect.what, check, timeout, expect.hopeless)

    async def until_async(
        self,
        what: str,
        check: Callable[[], object],
        timeout: float = 30.0,
        hopeless: Callable[[], bool] | None = None,
    ) -> None:
        start = time.monotonic()
        given_up: float | None = None  # since when ``hopeless`` holds
        waiting = Waiting(self.screen.out, f"waiting for {what}", self.screen.tty)
        self.screen.waiting = waiting
        try:
            while True:
                await self.screen.look()
                outcome = check()
                seen = await outcome if asyncio.iscoroutine(outcome) else outcome
                elapsed = time.monotonic() - start
                if seen is None:
                    waiting.finish(f"✔ ({elapsed:.1f} s)")
                    return
                if given_up is None and hopeless is not None and hopeless():
                    given_up = time.monotonic()
                if elapsed > timeout or (given_up is not None and time.monotonic() - given_up > SETTLE_S):
                    waiting.clear()
                    raise StoryFailed(self.step, what, str(seen))
                waiting.update(elapsed / timeout)
                await asyncio.sleep(POLL_S)
        finally:
            self.screen.waiting = None

    # -- what Slack shows ------------------------------------------------------------------------

    def _thread(self, ts: str) -> Thread:
        thread = self.screen.thread_of(ts)
        assert thread is not None, ts
        return thread

    def _has_button(self, ts: str, label: str, on: str | None = None) -> str | None:
        thread = self.screen.thread_of(ts)
        if thread is None:
            return "no such thread"
        if self.screen.button(thread, label, on):
            return None
        labels = [b.label for b in self.screen.buttons(thread)]
        return f"buttons {labels}" if labels else "no buttons"

    async def new_thread(self, *words: str, timeout: float = 20.0) -> str:
        """Wait for a thread not seen before whose card names all ``words``; its ts."""
        known = set(self.screen.threads)
        found: list[str] = []

        def check() -> str | None:
            fresh = [ts for ts in self.screen.threads if ts not in known]
            for ts in fresh:
                card = self.screen.card(self._thread(ts)).lower()
                if all(w.lower() in card for w in words):
                    found.append(ts)
                    return None
            return (
                f"new threads {[_short(self.screen.card(self._thread(t)), 120) for t in fresh]}"
                if fresh
                else ("no new thread")
            )

        await self.until(Expect(f"a new thread for {' '.join(words)}", check), timeout)
        return found[0]

    async def card_says(self, ts: str, label: str, timeout: float = 30.0) -> None:
        def check() -> str | None:
            card = self.screen.card(self._thread(ts))
            return None if label.lower() in card.lower() else f"the card: {_short(card)}"

        await self.until(Expect(f"the card to say “{label}”", check), timeout)

    async def thread_says(
        self, ts: str, words: str, timeout: float = 30.0, while_phase: tuple[str, ...] = ()
    ) -> None:
        """Wait for ``words`` in the thread; with ``while_phase``, only while the card is in one of those."""

        def check() -> str | None:
            text = self.screen.text(self._thread(ts))
            return None if words.lower() in text.lower() else f"the thread: {_short(text, 500)}"

        def hopeless() -> bool:
            phase = _phase(self.screen.card(self._thread(ts)))
            return phase is not None and not any(phase.startswith(p) for p in while_phase)

        what = f"the thread to show “{words}”"
        await self.until(Expect(what, check, hopeless if while_phase else None), timeout)

    async def told(self, user: str, *words: str, timeout: float = 15.0) -> None:
        """Wait for a new ephemeral to ``user`` naming all ``words``."""
        before = len(self.screen.texts_for(user))
        name = self.screen.directory.users.get(user, user)

        def check() -> str | None:
            fresh = self.screen.texts_for(user)[before:]
            if any(all(w.lower() in t.lower() for w in words) for t in fresh):
                return None
            return (
                f"{name} was told {[_short(t, 160) for t in fresh]}" if fresh else f"nothing new for {name}"
            )

        await self.until(Expect(f"{name} to be told {' … '.join(words)}", check), timeout)

    async def channel_says(self, *words: str, timeout: float = 30.0) -> str:
        """Wait for a message anywhere whose text names all ``words``; its thread's ts."""
        found: list[str] = []

        def check() -> str | None:
            for ts, thread in self.screen.threads.items():
                text = self.screen.text(thread).lower()
                if all(w.lower() in text for w in words):
                    found.append(ts)
                    return None
            return "no such message"

        await self.until(Expect(f"a message saying {' … '.join(words)}", check), timeout)
        return found[0]

    # -- the story -------------------------------------------------------------------------------

    async def play(self) -> None:
        await self.screen.load_directory()
        await self.screen.look()
        self.chapter(f"1. Staging: alice deploys checkout {GOOD} to staging")
        await self.command(ALICE, f"checkout {GOOD} to staging")
        staging = await self.new_thread("checkout", GOOD, "staging")
        await self.card_says(staging, "Succeeded", timeout=45)

        self.chapter("2. Production: a canary with two approval stages")
        await self.command(ALICE, f"checkout {GOOD} to production")
        first = await self.new_thread("checkout", GOOD, "production")
        await self.card_says(first, "Awaiting approval")
        await self.press(ALICE, first, "Approve")
        await self.told(ALICE, "four-eyes")
        await self.press(BOB, first, "Reject")
        await self.submit_reason(BOB, REASON)
        await self.card_says(first, "Rejected")
        await self.thread_says(first, REASON)

        self.chapter("3. Production again: bob approves stage 1, carol stage 2, the canary rolls out")
        await self.command(ALICE, f"checkout {GOOD} to production")
        second = await self.new_thread("checkout", GOOD, "production")
        await self.press(BOB, second, "Approve")
        await self.thread_says(second, "stage 2", while_phase=APPROVING)
        # Until the engine has handled bob's click, stage 1's request may still show its [Approve].
        await self.press(CAROL, second, "Approve", on="stage 2")
        await self.thread_says(second, "Canary step 1", timeout=30)
        await self.thread_says(second, "Canary step 2", timeout=40)
        await self.card_says(second, "Succeeded", timeout=60)

        if self.guarded:
            self.chapter(f"4. A bad release: checkout {BAD} to staging, caught by the guard")
            await self.command(ALICE, f"checkout {BAD} to staging")
            bad = await self.new_thread("checkout", BAD, "staging")
            await self.thread_says(bad, "Guard breached", timeout=45)
            await self.card_says(bad, "Rolled back", timeout=30)

            self.chapter("5. Staging is guard-locked until the restored version proves clean")
            lock = await self.channel_says("locked", "(guard)")
            await self.command(ALICE, f"checkout {NEXT} to staging")
            await self.told(ALICE, "locked")
            await self.thread_says(lock, "unlocked", timeout=45)

        self.chapter("6. The record: /deploy history")
        await self.command(ALICE, "history checkout")
        words = (GOOD, "succeeded", BAD) if self.guarded else (GOOD, "succeeded")
        await self.told(ALICE, *words)


def story_command(playbooks: str | None = None, config: str | None = None, out: TextIO | None = None) -> int:
    """Play the story; 0 when every step happened, 1 (with expected/saw) when one did not."""
    out = out or sys.stdout
    tty = out.isatty()
    style = Style(tty)
    began = time.monotonic()
    binary = prometheus_binary()
    if binary is None:
        out.write(f"Prometheus is not installed: {INSTALL_PROMETHEUS}\n")
        try:
            out.write(without_prometheus(Path(playbooks) if playbooks else None))
        except StackError as exc:
            print(f"shipthread: the sandbox could not start: {exc}", file=sys.stderr)
            return 1
    out.write("Starting the Slack, Jenkins and Kubernetes emulators, the demo service, ")
    out.write("Prometheus and shipthread serve…\n" if binary else "and shipthread serve…\n")
    out.flush()
    try:
        with SandboxStack.of_command(binary, playbooks, config) as stack:
            assert stack.serve is not None
            screen = Screen(stack.slack_url, out, colour=tty, tty=tty)
            story = Story(stack, screen, stack.driver(), guarded=stack.guarded)
            try:
                asyncio.run(story.play())
            except StoryFailed as failure:
                out.flush()
                print(style.bold(f"✗ {failure.step}"), file=sys.stderr)
                print(f"  expected {failure.expected}", file=sys.stderr)
                print(f"  saw {failure.saw}", file=sys.stderr)
                print("  shipthread serve's last log lines:", file=sys.stderr)
                for line in stack.serve.tail():
                    print(f"    {line}", file=sys.stderr)
                return 1
    except StackError as exc:
        print(f"shipthread: the sandbox could not start: {exc}", file=sys.stderr)
        return 1
    out.write("\n" + style.bold(f"✔ The story played to the end in {time.monotonic() - began:.0f} s.") + "\n")
    if binary is None:
        out.write(
            "Skipped, because Prometheus is not installed (no guard can judge without it): "
            + "; ".join(GUARDED_STEPS)
            + f". Install it with: {INSTALL_PROMETHEUS}\n"
        )
    out.flush()
    return 0
