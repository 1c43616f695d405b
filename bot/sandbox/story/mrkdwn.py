"""Slack mrkdwn as a terminal shows it: bold, italic, code, mentions and links, entities unescaped.

The sandbox prints each deployment thread as a person would read it in Slack, from the JSON the
emulator stored, so this module reads mrkdwn the way Slack's client does: ``<…>`` is a control
sequence (a mention, a channel, a link, ``<!here>``), and ``&lt;`` / ``&gt;`` / ``&amp;`` are
literal characters. That order matters: escaped text such as ``&lt;!channel&gt;`` ends up on screen
as the literal ``<!channel>``, never as a mention. Text is made terminal-safe before any styling is
added (a CI log line may carry escape sequences of its own), and colours are only added when the
caller asks (it decides from ``isatty``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

_ENTITIES: Final = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_CONTROL: Final = re.compile(r"<([^<>\n]+)>")
_FENCE: Final = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_INLINE_CODE: Final = re.compile(r"`([^`\n]+)`")
_SHORTCODE: Final = re.compile(r":([a-z0-9_+\-]+):")
_PLACEHOLDER: Final = "\ue000{}\ue001"
_PLACED: Final = re.compile("\ue000(\\d+)\ue001")
# Slack's rule: a marker opens after a non-word character and closes before one, around
# non-blank text, so ``error_ratio`` and ``2*3*4`` stay as they are.
_MARKS: Final = {
    name: re.compile(rf"(?<![\w{m}]){m}(?=\S)([^{m}\n]*?\S){m}(?![\w{m}])")
    for name, m in (("bold", r"\*"), ("italic", "_"), ("strike", "~"))
}
# C0 controls (but newline and tab), DEL and C1 controls: shown, never sent to the terminal.
_UNSAFE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

EMOJI: Final[Mapping[str, str]] = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "warning": "⚠️",
    "rocket": "🚀",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "lock": "🔒",
    "unlock": "🔓",
    "rotating_light": "🚨",
    "tada": "🎉",
    "no_entry_sign": "🚫",
    "no_entry": "⛔",
    "rewind": "⏪",
    "shield": "🛡️",
    "chart_with_upwards_trend": "📈",
    "hammer": "🔨",
    "ship": "🚢",
    "eyes": "👀",
    "+1": "👍",
    "thumbsup": "👍",
    "-1": "👎",
    "fire": "🔥",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "construction": "🚧",
    "mag": "🔍",
    "sos": "🆘",
}
"""Shortcodes a bot is likely to write; any other ``:name:`` is left as typed."""


@dataclass(frozen=True)
class Style:
    """ANSI styling, or none at all (``Style()``): the caller decides from ``isatty``."""

    colour: bool = False

    def _wrap(self, on: str, off: str) -> Callable[[str], str]:
        if not self.colour:
            return lambda s: s
        return lambda s: f"\x1b[{on}m{s}\x1b[{off}m"

    def bold(self, s: str) -> str:
        return self._wrap("1", "22")(s)

    def italic(self, s: str) -> str:
        return self._wrap("3", "23")(s)

    def strike(self, s: str) -> str:
        return self._wrap("9", "29")(s)

    def dim(self, s: str) -> str:
        return self._wrap("2", "22")(s)

    def code(self, s: str) -> str:
        # Without colour the backticks stay: they are how a plain transcript shows code.
        return self._wrap("36", "39")(s) if self.colour else f"`{s}`"

    def mention(self, s: str) -> str:
        return self._wrap("1;35", "22;39")(s)

    def link(self, s: str) -> str:
        return self._wrap("4", "24")(s)

    def tone(self, style: str | None, s: str) -> str:
        """A button's ``primary`` (green) or ``danger`` (red) style."""
        codes = {"primary": ("32", "39"), "danger": ("31", "39")}.get(style or "")
        return self._wrap(*codes)(s) if codes else s


@dataclass(frozen=True)
class Directory:
    """Names for the ids in mrkdwn: users (``U…``), user groups (``S…``) and channels (``C…``)."""

    users: Mapping[str, str] = field(default_factory=dict)
    usergroups: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)


def visible(text: str) -> str:
    """``text`` with control characters shown as ``␛``-style symbols instead of sent to the terminal."""
    return _UNSAFE.sub(lambda m: _symbol(m.group()), text)


def _symbol(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ … ␟ (␛ for ESC)
    return "␡" if code == 0x7F else "�"


def _styled(styler: Callable[[str], str]) -> Callable[[re.Match[str]], str]:
    return lambda m: styler(m.group(1))


def unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def emoji(text: str) -> str:
    return _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group()), text)


def plain_text(text: str) -> str:
    """A ``plain_text`` object's text: nothing in it is markup, only made terminal-safe."""
    return emoji(visible(text))


@dataclass(frozen=True)
class Mrkdwn:
    """Renders mrkdwn for a terminal with one directory, one style and one choice about URLs."""

    directory: Directory = field(default_factory=Directory)
    style: Style = field(default_factory=Style)
    urls: bool = True
    """Show a link's URL after its label (dimmed with colour); off, only the label is shown."""

    def lines(self, text: str) -> list[str]:
        """``text`` as terminal lines; a fenced code block becomes lines framed by ``│``."""
        out: list[str] = []
        pos = 0
        for fence in _FENCE.finditer(text):
            out += self._prose(text[pos : fence.start()])
            out += [self.style.dim("│ ") + visible(unescape(line)) for line in fence.group(1).split("\n")]
            pos = fence.end()
        out += self._prose(text[pos:])
        return out

    def inline(self, text: str) -> str:
        """``text`` on one line (a field, a context element): line breaks become `` · ``."""
        return " · ".join(line for line in self.lines(text) if line.strip())

    def _prose(self, text: str) -> list[str]:
        text = text.strip("\n")
        if not text:
            return []
        return self._span(visible(text)).split("\n")

    def _span(self, text: str) -> str:
        placed: list[str] = []

        def place(rendered: str) -> str:
            placed.append(rendered)
            return _PLACEHOLDER.format(len(placed) - 1)

        # The placeholder markers are private-use characters: any in the text itself are dropped.
        text = text.replace("\ue000", "").replace("\ue001", "")
        # Code first (nothing inside it is markup), then control sequences, then emphasis.
        text = _INLINE_CODE.sub(lambda m: place(self.style.code(unescape(m.group(1)))), text)
        text = _CONTROL.sub(lambda m: place(self._control(m.group(1))), text)
        text = emoji(text)
        for name, pattern in _MARKS.items():
            text = pattern.sub(_styled(getattr(self.style, name)), text)
        text = unescape(text)
        # Placeholders hold text that was already unescaped: put back once, never unescaped twice.
        return _PLACED.sub(lambda m: placed[int(m.group(1))], text)

    def _control(self, body: str) -> str:
        target, _, label = body.partition("|")
        label = unescape(label)
        names = self.directory
        if target.startswith("@"):
            uid = target[1:]
            return self.style.mention("@" + (label or names.users.get(uid, uid)))
        if target.startswith("#"):
            cid = target[1:]
            return self.style.mention("#" + (label or names.channels.get(cid, cid)))
        if target.startswith("!subteam^"):
            gid = target.removeprefix("!subteam^")
            handle = label.removeprefix("@") or names.usergroups.get(gid, gid)
            return self.style.mention("@" + handle)
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!"):
            return self.style.mention("@" + (label or target[1:]))
        url = unescape(target)
        if not label:
            return self.style.link(url)
        shown = self.style.link(label)
        return f"{shown} {self.style.dim(f'({url})')}" if self.urls else shown
