"""A Slack thread as a terminal transcript, rendered from the Block Kit JSON the bot really sent.

``shipthread sandbox`` plays a story through the emulators and prints each deployment's thread
as it unfolds. What it prints must be what a person would see in Slack, so it is rendered from
the messages the Slack emulator stored (its control API, ``/_sandbox/messages``) and never from
the bot's own Python values: a renderer bug shows in the transcript as it would in Slack.

Everything here is a pure function of message JSON; the blocks themselves are rendered by
``block_kit`` (with ``ButtonNumbers``, the numbers given to buttons so far, owned by the caller):

- ``render_message`` / ``render_thread``: the lines of one message or of a whole thread, with
  its buttons (numbered when asked, ``[1 Approve]``, so an interactive prompt can press them);
- ``threads_of``: the emulator's flat message list grouped into threads;
- ``live_lines``: given the previous and the new state of a thread, what to print now: new
  replies once, edited messages again in a compact form (the lines that changed), deletions;
- (``progress_line`` / ``Progress``, the progress bar for long waits, is ``progress``.)

mrkdwn itself (bold, mentions, links, entities, emoji) is ``mrkdwn``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bot.sandbox.story.block_kit import Button, Options, Rendered, render_blocks
from bot.sandbox.story.mrkdwn import plain_text

JSONDict = dict[str, Any]

REPLY: Final = "↳ "
EDITED: Final = "↻ "
DELETED: Final = "✗ "
INDENT: Final = "    "
MAX_COMPACT: Final = 4
"""An edit that changes more lines than this is printed whole again rather than as a diff."""


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
