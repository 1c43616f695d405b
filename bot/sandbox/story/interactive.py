"""``shipthread sandbox --interactive``: rehearse in a terminal, as any of the sandbox's people.

The same stack as the story (``stack``), with the person's own playbooks and config if
given, and a prompt instead of a script: ``/deploy …`` and ``/rollback …`` go to ``shipthread
serve`` as signed slash commands from the current user (``alice> ``; ``as bob`` switches), ``press
N`` clicks button N as numbered in the transcript (a modal that opens — Reject's reason — is
filled in at the prompt and submitted; a button with a confirm dialog asks first). Threads and
ephemerals are printed as they change, from the blocks the bot sent, while the prompt waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Final, TextIO

from bot.sandbox.slack import SlackDriver
from bot.sandbox.story.play import CHANNEL
from bot.sandbox.story.processes import StackError
from bot.sandbox.story.prometheus_choice import prometheus_binary
from bot.sandbox.story.screen import Screen, text_input
from bot.sandbox.story.stack import INSTALL_PROMETHEUS, SandboxStack
from bot.sandbox.story.transcript import render_thread

HELP: Final = """\
  /deploy …, /rollback …   a slash command, typed in #deploys as the current user
  as NAME                  be someone else (alice, bob, carol, or any user id)
  press N                  press button N ([N Label] in the transcript)
  threads                  list the threads; show N prints thread N whole
  help                     this; quit (or Ctrl-D) stops everything"""
LOOK_S: Final = 0.3


class Prompt:
    """The read-eval-print loop; printing of Slack's changes runs beside it."""

    def __init__(self, screen: Screen, driver: SlackDriver, out: TextIO) -> None:
        self.screen, self.driver, self.out = screen, driver, out
        self.user = "U0ALICE"
        self._lock = asyncio.Lock()
        self._lines: asyncio.Queue[str | None] | None = None

    @property
    def name(self) -> str:
        return self.screen.directory.users.get(self.user, self.user)

    async def read(self, prompt: str) -> str | None:
        """One line from stdin (None at its end), read by a daemon thread: Ctrl-C never waits on it."""
        if self._lines is None:
            self._lines = asyncio.Queue()
            loop, lines = asyncio.get_running_loop(), self._lines

            def pump() -> None:
                for raw in iter(sys.stdin.readline, ""):
                    loop.call_soon_threadsafe(lines.put_nowait, raw)
                loop.call_soon_threadsafe(lines.put_nowait, None)

            threading.Thread(target=pump, name="sandbox-stdin", daemon=True).start()
        self.out.write(prompt)
        self.out.flush()
        line = await self._lines.get()
        return None if line is None else line.strip()

    async def watch(self) -> None:
        while True:
            async with self._lock:
                with contextlib.suppress(RuntimeError):
                    await self.screen.look()
            await asyncio.sleep(LOOK_S)

    def tell(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    async def run(self) -> None:
        await self.screen.load_directory()
        self.tell("Type help for the commands. Buttons are numbered as they appear: press N.")
        watcher = asyncio.create_task(self.watch())
        try:
            while True:
                line = await self.read(f"{self.name}> ")
                if line is None or line in ("quit", "exit"):
                    return
                if line:
                    await self.handle(line)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def handle(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "help":
            self.tell(HELP)
        elif word == "as":
            found = self.screen.user_id(rest)
            if found is None:
                self.tell(f"no user {rest!r}: {', '.join(sorted(self.screen.directory.users.values()))}")
            else:
                self.user = found
        elif word.startswith("/"):
            answer = await self.driver.slash_command(word, rest, user_id=self.user, channel_id=CHANNEL)
            if answer.status != 200:
                self.tell(f"Slack got HTTP {answer.status} from the bot")
        elif word == "press":
            await self.press(rest)
        elif word == "threads":
            for number, thread in enumerate(self.screen.threads.values(), 1):
                first = self.screen.card(thread).splitlines()[0] if self.screen.card(thread) else ""
                self.tell(f"  {number}. {first}")
        elif word == "show":
            threads = list(self.screen.threads.values())
            if not rest.isdigit() or not 1 <= int(rest) <= len(threads):
                self.tell(f"show takes a thread number, 1 to {len(threads)}")
                return
            for text in render_thread(threads[int(rest) - 1], self.screen.options()).lines:
                self.tell(text)
        else:
            self.tell(f"unknown command {word!r}; type help")
        await asyncio.sleep(0.2)  # let the bot's first answer arrive before the next prompt
        async with self._lock:
            await self.screen.look()

    async def press(self, rest: str) -> None:
        async with self._lock:
            await self.screen.look()
        buttons = self.screen.numbered()
        if not rest.isdigit() or int(rest) not in buttons:
            self.tell(f"no button {rest!r}; buttons now: {sorted(buttons) or 'none'}")
            return
        button = buttons[int(rest)]
        if button.confirm is not None:
            c = button.confirm
            answer = await self.read(f"“{c.title}” {c.text} [{c.confirm} = y / {c.deny} = n] ")
            if (answer or "").lower() not in ("y", "yes"):
                return
        before = {str(v.get("id")) for v in await self.screen.views(self.user)}
        clicked = await self.driver.click_button(
            button.channel, button.message_ts, button.action_id, self.user
        )
        if clicked.status != 200:
            self.tell(f"Slack got HTTP {clicked.status} from the bot")
            return
        for _ in range(10):  # a modal opens within Slack's 3 s trigger life, or not at all
            opened = [v for v in await self.screen.views(self.user) if str(v.get("id")) not in before]
            if opened:
                await self.fill(opened[-1])
                return
            await asyncio.sleep(0.1)

    async def fill(self, view: dict[str, object]) -> None:
        title = view.get("title")
        name = title.get("text") if isinstance(title, dict) else "a modal"
        field = text_input(view)
        values = {}
        if field is not None:
            reason = await self.read(f"{name} — reason> ")
            values = {field[0]: {field[1]: reason or ""}}
        answer = await self.driver.submit_view(str(view["id"]), values, user_id=self.user)
        if answer.status != 200:
            self.tell(f"Slack got HTTP {answer.status} from the bot")


def interactive_command(
    playbooks: str | None = None, config: str | None = None, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    binary = prometheus_binary()
    if binary is None:
        out.write(f"Prometheus is not installed: {INSTALL_PROMETHEUS}\n")
        out.write("Guards cannot judge without it: their checks will see no data.\n")
    out.write("Starting the sandbox…\n")
    out.flush()
    try:
        with SandboxStack.of_command(binary, playbooks, config) as stack:
            tty = out.isatty()
            screen = Screen(stack.slack_url, out, colour=tty, numbered=True)
            asyncio.run(Prompt(screen, stack.driver(), out).run())
    except StackError as exc:
        print(f"shipthread: the sandbox could not start: {exc}", file=sys.stderr)
        return 1
    return 0
