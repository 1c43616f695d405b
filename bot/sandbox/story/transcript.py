"""A Slack thread as a terminal transcript, rendered from the Block Kit JSON the bot really sent.

``shipthread sandbox`` plays a story through the emulators and prints each deployment's thread
as it unfolds. What it prints must be what a person would see in Slack, so it is rendered from
the messages the Slack emulator stored (its control API, ``/_sandbox/messages``) and never from
the bot's own Python values: a renderer bug shows in the transcript as it would in Slack.

Everything here is a pure function of message JSON, except ``ButtonNumbers`` (the numbers given
to buttons so far, owned by the caller) and ``Progress`` (which writes to a stream):

- ``render_message`` / ``render_thread``: the lines of one message or of a whole thread, with
  its buttons (numbered when asked, ``[1 Approve]``, so an interactive prompt can press them);
- ``threads_of``: the emulator's flat message list grouped into threads;
- ``live_lines``: given the previous and the new state of a thread, what to print now: new
  replies once, edited messages again in a compact form (the lines that changed), deletions;
- ``progress_line`` / ``Progress``: a progress bar for long waits, redrawn in place on a TTY,
  printed at milestones otherwise.

mrkdwn itself (bold, mentions, links, entities, emoji) is ``transcript_mrkdwn``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from bot.sandbox.transcript_mrkdwn import Directory, Mrkdwn, Style, plain_text

JSONDict = dict[str, Any]

REPLY: Final = "↳ "
EDITED: Final = "↻ "
DELETED: Final = "✗ "
INDENT: Final = "    "
DIVIDER: Final = "─" * 40
MAX_COMPACT: Final = 4
"""An edit that changes more lines than this is printed whole again rather than as a diff."""


# -- options and buttons -------------------------------------------------------------------------


class ButtonNumbers:
    """The numbers buttons were given, so a button keeps its number for the whole session.

    A button is known by its message's ts, its action id and which of that message's buttons
    with this action id it is (not by block id or value: Slack gives blocks new ids on each
    edit, and our values carry a version number): redrawing a message keeps its buttons'
    numbers, and a button that appears later gets the next free number.
    """

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str, int], int] = {}

    def of(self, key: tuple[str, str, int]) -> int:
        if key not in self._numbers:
            self._numbers[key] = len(self._numbers) + 1
        return self._numbers[key]


@dataclass(frozen=True)
class Options:
    """How to render: names for ids, colour (ANSI) or not, URLs shown or not, buttons numbered or not."""

    directory: Directory = field(default_factory=Directory)
    colour: bool = False
    urls: bool = True
    numbers: ButtonNumbers | None = None
    """Number buttons (``[1 Approve]``) from this registry; None: plain ``[Approve]``."""
    bot_name: str = "shipthread"
    times: bool = False
    """Prefix each message's author with its time (UTC, from its ts)."""

    @property
    def style(self) -> Style:
        return Style(self.colour)

    @property
    def mrkdwn(self) -> Mrkdwn:
        return Mrkdwn(self.directory, self.style, self.urls)


@dataclass(frozen=True)
class Confirm:
    """A button's "are you sure?" dialog: Slack shows it before the click reaches the app."""

    title: str
    text: str
    confirm: str
    deny: str


@dataclass(frozen=True)
class Button:
    """A button a person could press, with what a block_actions payload needs to press it."""

    label: str
    action_id: str
    value: str
    block_id: str
    message_ts: str
    channel: str
    style: str | None = None
    confirm: Confirm | None = None
    url: str | None = None
    number: int | None = None


@dataclass(frozen=True)
class Rendered:
    lines: tuple[str, ...]
    buttons: tuple[Button, ...] = ()


# -- blocks --------------------------------------------------------------------------------------


def _text_of(obj: object, opts: Options) -> list[str]:
    """A text object (``plain_text`` or ``mrkdwn``) as lines."""
    if not isinstance(obj, dict):
        return []
    raw = str(obj.get("text") or "")
    if obj.get("type") == "plain_text":
        return plain_text(raw).split("\n")
    return opts.mrkdwn.lines(raw)


def _inline(obj: object, opts: Options) -> str:
    return " · ".join(line for line in _text_of(obj, opts) if line.strip())


def _field(obj: object, opts: Options) -> str:
    """``*Phase*\\n⏳ Awaiting approval`` reads as ``Phase: ⏳ Awaiting approval``."""
    lines = [line for line in _text_of(obj, opts) if line.strip()]
    if len(lines) >= 2:
        return f"{lines[0]}: {' · '.join(lines[1:])}"
    return lines[0] if lines else ""


def _confirm(raw: object, opts: Options) -> Confirm | None:
    if not isinstance(raw, dict):
        return None
    return Confirm(
        _inline(raw.get("title"), opts),
        _inline(raw.get("text"), opts),
        _inline(raw.get("confirm"), opts) or "Yes",
        _inline(raw.get("deny"), opts) or "Cancel",
    )


def _element(
    raw: JSONDict, block_id: str, where: tuple[str, str], opts: Options, seen: dict[str, int]
) -> Button | str:
    """A button (pressable) or another element's short description; ``seen`` counts action ids."""
    kind = str(raw.get("type", ""))
    if kind == "button":
        action_id = str(raw.get("action_id", ""))
        seen[action_id] = occurrence = seen.get(action_id, -1) + 1
        key = (where[1], action_id, occurrence)
        number = opts.numbers.of(key) if opts.numbers is not None else None
        return Button(
            label=_inline(raw.get("text"), opts),
            action_id=action_id,
            value=str(raw.get("value", "")),
            block_id=block_id,
            message_ts=where[1],
            channel=where[0],
            style=raw.get("style"),
            confirm=_confirm(raw.get("confirm"), opts),
            url=raw.get("url"),
            number=number,
        )
    if kind == "image":
        return f"[image: {plain_text(str(raw.get('alt_text', '')))}]"
    placeholder = _inline(raw.get("placeholder"), opts)
    return f"[{kind}{': ' + placeholder if placeholder else ''} ▾]"


def button_text(button: Button, opts: Options) -> str:
    """``[Approve]``, ``[1 Approve]``; a button with a confirm dialog is marked ``⚠``."""
    number = f"{button.number} " if button.number is not None else ""
    mark = "⚠" if button.confirm else ""
    return opts.style.tone(button.style, f"[{number}{button.label}{mark}]")


def _controls(items: Sequence[Button | str], opts: Options) -> list[str]:
    """One line of buttons and elements, then one line per confirm dialog."""
    if not items:
        return []
    line = " ".join(button_text(i, opts) if isinstance(i, Button) else i for i in items)
    out = [line]
    for item in items:
        if isinstance(item, Button) and item.confirm:
            c = item.confirm
            out.append(
                opts.style.dim(f"  ⚠ {item.label} asks first: “{c.title}” {c.text} [{c.confirm}|{c.deny}]")
            )
    return out


def render_blocks(blocks: Sequence[object], where: tuple[str, str], opts: Options) -> Rendered:
    """Block Kit blocks as lines; ``where`` is (channel, message ts), for the buttons."""
    lines: list[str] = []
    buttons: list[Button] = []
    seen: dict[str, int] = {}
    style = opts.style
    for index, raw in enumerate(blocks):
        if not isinstance(raw, dict):
            continue
        kind = raw.get("type")
        block_id = str(raw.get("block_id") or index)
        if kind == "header":
            lines.append(style.bold(_inline(raw.get("text"), opts)))
        elif kind == "section":
            lines += _text_of(raw.get("text"), opts)
            lines += [_field(f, opts) for f in raw.get("fields") or []]
            accessory = raw.get("accessory")
            if isinstance(accessory, dict):
                item = _element(accessory, block_id, where, opts, seen)
                buttons += [item] if isinstance(item, Button) else []
                lines += _controls([item], opts)
        elif kind == "context":
            parts = []
            for element in raw.get("elements") or []:
                if isinstance(element, dict) and element.get("type") == "image":
                    parts.append(f"[image: {plain_text(str(element.get('alt_text', '')))}]")
                else:
                    parts.append(_inline(element, opts))
            lines.append(style.dim("  ".join(p for p in parts if p.strip())))
        elif kind == "divider":
            lines.append(style.dim(DIVIDER))
        elif kind == "actions":
            items = [
                _element(e, block_id, where, opts, seen)
                for e in raw.get("elements") or []
                if isinstance(e, dict)
            ]
            buttons += [i for i in items if isinstance(i, Button)]
            lines += _controls(items, opts)
        elif kind == "image":
            lines.append(f"[image: {plain_text(str(raw.get('alt_text', '')))}]")
        elif kind in ("markdown", "rich_text"):
            lines += opts.mrkdwn.lines(_rich_text(raw))
        else:
            lines.append(style.dim(f"[{plain_text(str(kind))} block]"))
    return Rendered(tuple(lines), tuple(buttons))


def _rich_text(raw: object) -> str:
    """The words of a ``rich_text`` (or ``markdown``) block, without its styling."""
    if isinstance(raw, dict):
        if isinstance(raw.get("text"), str):
            return str(raw["text"])
        return "".join(_rich_text(e) for e in raw.get("elements") or [])
    if isinstance(raw, list):
        return "".join(_rich_text(e) for e in raw)
    return ""


# -- messages and threads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Thread:
    """A parent message and its replies, oldest first, as the control API gives them."""

    channel: str
    parent: JSONDict
    replies: tuple[JSONDict, ...] = ()

    @property
    def ts(self) -> str:
        return str(self.parent.get("ts", ""))

    def messages(self) -> tuple[JSONDict, ...]:
        return (self.parent, *self.replies)


def threads_of(messages: Iterable[JSONDict]) -> dict[str, Thread]:
    """The emulator's messages (``/_sandbox/messages``) grouped by thread, keyed by the parent's ts.

    A message without replies is a thread of one; orphaned replies are left out, as Slack shows
    them nowhere.
    """
    parents: dict[str, JSONDict] = {}
    replies: dict[str, list[JSONDict]] = {}
    for m in sorted(messages, key=lambda m: _ts_key(m.get("ts"))):
        if m.get("orphaned"):
            continue
        ts, thread_ts = str(m.get("ts", "")), m.get("thread_ts")
        if thread_ts is None or thread_ts == ts:
            parents[ts] = m
        else:
            replies.setdefault(str(thread_ts), []).append(m)
    return {ts: Thread(str(p.get("channel", "")), p, tuple(replies.get(ts, ()))) for ts, p in parents.items()}


def _ts_key(ts: object) -> tuple[int, int]:
    seconds, _, micros = str(ts or "0").partition(".")
    try:
        return int(seconds), int(micros or 0)
    except ValueError:
        return 0, 0


def author(message: Mapping[str, Any], opts: Options) -> str:
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        profile = message.get("bot_profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        return plain_text(str(name or opts.bot_name))
    uid = str(message.get("user", ""))
    return plain_text(opts.directory.users.get(uid, uid or "someone"))


def _stamp(message: Mapping[str, Any]) -> str:
    seconds = _ts_key(message.get("ts"))[0]
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S ")


def _body(message: Mapping[str, Any], channel: str, opts: Options) -> Rendered:
    if message.get("subtype") == "tombstone":
        return Rendered((opts.style.dim("(this message was deleted)"),))
    blocks = message.get("blocks")
    where = (channel or str(message.get("channel", "")), str(message.get("ts", "")))
    if isinstance(blocks, list) and blocks:
        return render_blocks(blocks, where, opts)
    return Rendered(tuple(opts.mrkdwn.lines(str(message.get("text") or ""))))


def render_message(
    message: Mapping[str, Any], opts: Options, *, channel: str = "", reply: bool = False, mark: str = ""
) -> Rendered:
    """One message: its author, then its content; a reply is indented under ``↳``."""
    body = _body(message, channel, opts)
    who = opts.style.bold(author(message, opts))
    head = f"{_stamp(message) if opts.times else ''}{who}"
    edited = opts.style.dim(" (edited)") if message.get("edited") and not mark else ""
    lines = [line for line in body.lines if line.strip()] or [""]
    lead, indent = (f"  {mark or REPLY}", "  " + INDENT) if reply else (mark, INDENT)
    out = [f"{lead}{head}{edited} · {lines[0]}", *(f"{indent}{line}" for line in lines[1:])]
    return Rendered(tuple(out), body.buttons)


def render_thread(thread: Thread, opts: Options) -> Rendered:
    """The whole thread: the parent, then each reply."""
    lines: list[str] = []
    buttons: list[Button] = []
    for i, m in enumerate(thread.messages()):
        r = render_message(m, opts, channel=thread.channel, reply=i > 0)
        lines += r.lines
        buttons += r.buttons
    return Rendered(tuple(lines), tuple(buttons))


def pressable(thread: Thread, opts: Options) -> dict[int, Button]:
    """The buttons in the thread now, by number (``opts.numbers`` must be set)."""
    return {b.number: b for b in render_thread(thread, opts).buttons if b.number is not None}


# -- live: what changed since the last look ------------------------------------------------------


def _version(message: Mapping[str, Any]) -> str:
    """What identifies one version of a message: its edit stamp and its content."""
    edited = message.get("edited") or {}
    stamp = edited.get("ts") if isinstance(edited, dict) else None
    content = [message.get("subtype"), message.get("text"), message.get("blocks")]
    return json.dumps([stamp, content], sort_keys=True, default=str)


def _content_lines(message: Mapping[str, Any], channel: str, opts: Options) -> list[str]:
    return [line for line in _body(message, channel, opts).lines if line.strip()]


def _compact(
    before: Mapping[str, Any], after: Mapping[str, Any], channel: str, opts: Options, reply: bool
) -> list[str]:
    """An edited message as the lines that changed: its first line, then what is new."""
    if after.get("subtype") == "tombstone":
        lead = f"  {DELETED}" if reply else DELETED
        return [f"{lead}{opts.style.bold(author(before, opts))} · {opts.style.dim('message deleted')}"]
    old = _content_lines(before, channel, opts)
    new = _content_lines(after, channel, opts)
    kept = set(old)
    changed = [line for line in new[1:] if line not in kept]
    if not changed:  # only lines taken away (a lock lifted): say which
        now = set(new)
        changed = [f"− {line.strip()}" for line in old[1:] if line not in now]
    if not new or len(changed) > MAX_COMPACT:
        return list(render_message(after, opts, channel=channel, reply=reply, mark=EDITED).lines)
    lead = f"  {EDITED}" if reply else EDITED
    title = new[0]
    head = f"{lead}{opts.style.bold(author(after, opts))} · {title}"
    if not changed:
        return [head]
    if len(changed) == 1 and len(title) + len(changed[0]) < 100:
        return [f"{head} — {changed[0].strip()}"]
    indent = "  " + INDENT if reply else INDENT
    return [head, *(f"{indent}{line}" for line in changed)]


def live_lines(previous: Thread | None, current: Thread, opts: Options) -> list[str]:
    """The lines to print now that ``previous`` became ``current`` (None: nothing printed yet).

    A new message is printed whole, once; an edited one is printed again compactly (``↻``, the
    lines that changed), a deleted one as a one-line note; an unchanged one not at all.
    """
    if previous is None:
        return list(render_thread(current, opts).lines)
    before = {str(m.get("ts")): m for m in previous.messages()}
    out: list[str] = []
    for i, m in enumerate(current.messages()):
        old = before.get(str(m.get("ts")))
        reply = i > 0
        if old is None:
            out += render_message(m, opts, channel=current.channel, reply=reply).lines
        elif _version(old) != _version(m):
            out += _compact(old, m, current.channel, opts, reply)
    return out


# -- progress ------------------------------------------------------------------------------------


def progress_bar(done: float, width: int = 10) -> str:
    """``█████░░░░░`` for a share between 0 and 1."""
    share = 0.0 if not math.isfinite(done) else max(0.0, min(1.0, done))
    full = int(share * width + 0.5)
    return "█" * full + "░" * (width - full)


def progress_line(done: float, label: str, width: int = 10) -> str:
    """``[█████░░░░░] 50% waiting for the guard window``."""
    share = 0.0 if not math.isfinite(done) else max(0.0, min(1.0, done))
    return f"[{progress_bar(share, width)}] {int(share * 100)}% {label}"


MILESTONES: Final = (0.0, 0.25, 0.5, 0.75, 1.0)


class Progress:
    """A progress bar on ``stream``: redrawn in place on a TTY, one line per milestone otherwise.

    ``tty`` defaults to ``stream.isatty()``; the caller may force it (tests, ``--no-tty``).
    """

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        width: int = 10,
        milestones: Sequence[float] = MILESTONES,
    ) -> None:
        self.label = label
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._width = width
        self._milestones = sorted(milestones)
        self._passed = -1  # index of the last milestone printed
        self._drawn = ""
        self._open = False

    def update(self, done: float, label: str | None = None) -> None:
        if label is not None:
            self.label = label
        line = progress_line(done, self.label, self._width)
        if self._tty:
            if line != self._drawn:
                pad = " " * max(0, len(self._drawn) - len(line))
                self._stream.write(f"\r{line}{pad}")
                self._stream.flush()
                self._drawn, self._open = line, True
            return
        reached = max((i for i, m in enumerate(self._milestones) if done >= m), default=-1)
        if reached > self._passed:
            self._passed = reached
            self._stream.write(line + "\n")
            self._stream.flush()

    def finish(self, label: str | None = None) -> None:
        """Draw 100 % and end the line."""
        self.update(1.0, label)
        if self._tty and self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
