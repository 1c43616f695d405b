"""What the sandbox's people see in Slack, read from the Slack emulator and printed as it changes.

The story and the interactive prompt both judge and act only on what Slack shows: the messages
and ephemerals the emulator stored (``/_sandbox/messages``, ``/_sandbox/ephemeral``), rendered
by ``transcript`` from the blocks the bot really sent. ``Screen.look()`` reads them again and
prints what changed — each thread's new and edited messages (``transcript.live_lines``) under a
heading naming the thread, and each new ephemeral with the one person who sees it. Buttons are
found there by their label, as a person finds them, or by number (``--interactive``).

``Waiting`` is the progress bar of a long wait, redrawn in place on a terminal; the screen clears
it before printing and it is drawn again on its next update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TextIO

import aiohttp

from bot.sandbox.story.block_kit import Button, ButtonNumbers, Options
from bot.sandbox.story.mrkdwn import Directory, Style
from bot.sandbox.story.progress import progress_line
from bot.sandbox.story.transcript import Thread, live_lines, render_message, render_thread, threads_of

JSONDict = dict[str, Any]
CLEAR_LINE: Final = "\r\033[K"
TIMEOUT: Final = aiohttp.ClientTimeout(total=10)


class Waiting:
    """A progress bar for one wait: in place on a TTY; a line at its start and end otherwise."""

    def __init__(self, out: TextIO, label: str, tty: bool) -> None:
        self.out, self.label, self.tty = out, label, tty
        self.shown = False
        if not tty:
            out.write(progress_line(0.0, label) + "\n")
            out.flush()

    def update(self, done: float) -> None:
        if self.tty:
            self.out.write(CLEAR_LINE + progress_line(done, self.label))
            self.out.flush()
            self.shown = True

    def clear(self) -> None:
        if self.tty and self.shown:
            self.out.write(CLEAR_LINE)
            self.shown = False

    def finish(self, note: str) -> None:
        self.clear()
        self.out.write(progress_line(1.0, f"{self.label} {note}") + "\n")
        self.out.flush()


@dataclass(frozen=True)
class Ephemeral:
    """A message only ``user`` sees, rendered as text."""

    user: str
    text: str


class Screen:
    """The Slack emulator as its people see it; ``look()`` refreshes it and prints the changes."""

    def __init__(
        self,
        slack_url: str,
        out: TextIO,
        *,
        colour: bool = False,
        numbered: bool = False,
        tty: bool = False,
        quiet: bool = False,
    ) -> None:
        self.slack_url = slack_url.rstrip("/")
        self.out = out
        self.colour = colour
        self.tty = tty
        self.quiet = quiet
        self.numbers = ButtonNumbers() if numbered else None
        self.directory = Directory()
        self.threads: dict[str, Thread] = {}
        """Every thread seen, by its parent's ts, in the order they appeared."""
        self.ephemerals: list[Ephemeral] = []
        self._seen_ephemerals = 0
        self._last_heading = ""
        self.waiting: Waiting | None = None

    # -- reading Slack ---------------------------------------------------------------------------

    async def _get(self, path: str, **query: str) -> JSONDict:
        last: Exception | None = None
        for attempt in range(3):
            try:
                async with (
                    aiohttp.ClientSession(timeout=TIMEOUT) as session,
                    session.get(f"{self.slack_url}{path}", params=query) as response,
                ):
                    answer = await response.json()
                    return answer if isinstance(answer, dict) else {}
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = exc
                await asyncio.sleep(0.1 * (attempt + 1))
        raise RuntimeError(f"the Slack emulator did not answer {path}: {last}")

    async def load_directory(self) -> None:
        workspace = await self._get("/_sandbox/workspace")
        self.directory = Directory(
            users={str(u["id"]): str(u["name"]) for u in workspace.get("users", [])},
            usergroups={str(g["id"]): str(g.get("handle", g["id"])) for g in workspace.get("usergroups", [])},
            channels={str(c["id"]): str(c["name"]) for c in workspace.get("channels", [])},
        )

    def user_id(self, name: str) -> str | None:
        """``alice`` (or ``@alice``, or ``U0ALICE``) → the user's id."""
        name = name.removeprefix("@")
        for uid, known in self.directory.users.items():
            if name in (uid, known):
                return uid
        return None

    def channel_id(self, name: str) -> str | None:
        name = name.removeprefix("#")
        for cid, known in self.directory.channels.items():
            if name in (cid, known):
                return cid
        return None

    def options(self, *, colour: bool | None = None, urls: bool = False) -> Options:
        return Options(
            directory=self.directory,
            colour=self.colour if colour is None else colour,
            urls=urls,
            numbers=self.numbers,
        )

    async def look(self) -> None:
        """Read every message and ephemeral again; print what changed (unless ``quiet``)."""
        messages = (await self._get("/_sandbox/messages")).get("messages", [])
        ephemerals = (await self._get("/_sandbox/ephemeral")).get("messages", [])
        current = threads_of(messages)
        opts = self.options()
        for ts, thread in current.items():
            lines = live_lines(self.threads.get(ts), thread, opts)
            if lines:
                self._emit(self._heading(ts, thread), lines)
            self.threads[ts] = thread
        for raw in ephemerals[self._seen_ephemerals :]:
            plain = render_message(raw, self.options(colour=False), channel=str(raw.get("channel", ""))).lines
            user = str(raw.get("user", ""))
            self.ephemerals.append(Ephemeral(user, "\n".join(plain)))
            shown = render_message(raw, opts, channel=str(raw.get("channel", ""))).lines
            name = self.directory.users.get(user, user)
            head = Style(self.colour).dim(f"🔒 only {name} sees this:")
            self._emit("", [head, *(f"  {line}" for line in shown)])
        self._seen_ephemerals = len(ephemerals)

    def _heading(self, ts: str, thread: Thread) -> str:
        number = list(self.threads).index(ts) + 1 if ts in self.threads else len(self.threads) + 1
        channel = self.directory.channels.get(thread.channel, thread.channel)
        return f"── thread {number} · #{channel} " + "─" * 30

    def _emit(self, heading: str, lines: list[str]) -> None:
        if self.quiet:
            return
        if self.waiting is not None:
            self.waiting.clear()
        if heading and heading != self._last_heading:
            self.out.write(Style(self.colour).dim(heading) + "\n")
        self._last_heading = heading or self._last_heading
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def say(self, line: str) -> None:
        """A narrator's line (what the story does next), set apart from Slack's own."""
        if self.waiting is not None:
            self.waiting.clear()
        self._last_heading = ""
        self.out.write(line + "\n")
        self.out.flush()

    # -- what is there ---------------------------------------------------------------------------

    def text(self, thread: Thread) -> str:
        """The whole thread as plain text (no colour), as a person reads it."""
        return "\n".join(render_thread(thread, self.options(colour=False)).lines)

    def card(self, thread: Thread) -> str:
        return "\n".join(
            render_message(thread.parent, self.options(colour=False), channel=thread.channel).lines
        )

    def texts_for(self, user: str) -> list[str]:
        return [e.text for e in self.ephemerals if e.user == user]

    def buttons(self, thread: Thread) -> list[Button]:
        return list(render_thread(thread, self.options(colour=False)).buttons)

    def button(self, thread: Thread, label: str, on: str | None = None) -> Button | None:
        """The newest button labelled ``label`` in the thread (what a person would press); with ``on``,
        only on a message that shows those words (the stage-2 request, not stage 1's, still drawn)."""
        opts = self.options(colour=False)
        found: list[Button] = []
        for i, message in enumerate(thread.messages()):
            drawn = render_message(message, opts, channel=thread.channel, reply=i > 0)
            if on is None or on.lower() in "\n".join(drawn.lines).lower():
                found += [b for b in drawn.buttons if b.label.lower() == label.lower()]
        return found[-1] if found else None

    def numbered(self) -> Mapping[int, Button]:
        """Every button in every thread now, by its number (``numbered=True``)."""
        out: dict[int, Button] = {}
        for thread in self.threads.values():
            out.update({b.number: b for b in self.buttons(thread) if b.number is not None})
        return out

    def thread_of(self, ts: str) -> Thread | None:
        return self.threads.get(ts)

    async def views(self, user: str) -> list[JSONDict]:
        """The modals open for ``user`` now, newest last."""
        found = (await self._get("/_sandbox/views", user=user)).get("views", [])
        return [v for v in found if v.get("type") == "modal" and not v.get("closed")]


def text_input(view: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (block id, action id) of a modal's first text input (a reason, say)."""
    for block in view.get("blocks") or []:
        element = block.get("element") if isinstance(block, dict) else None
        if (
            block.get("type") == "input"
            and isinstance(element, dict)
            and element.get("type") == "plain_text_input"
        ):
            return str(block.get("block_id")), str(element.get("action_id"))
    return None
