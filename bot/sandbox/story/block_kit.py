"""Block Kit as a terminal shows it: sections, fields, context, buttons (numbered) and their confirms.

The transcript (``transcript``) renders each message's blocks through here; what a person could
press is kept as ``Button`` records, numbered by ``ButtonNumbers`` so a prompt can press them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bot.sandbox.story.mrkdwn import Directory, Mrkdwn, Style, plain_text

JSONDict = dict[str, Any]

DIVIDER: Final = "─" * 40


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
