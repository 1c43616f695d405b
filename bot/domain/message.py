"""A message as data: plain text, mentions and inline code kept apart until they are rendered.

A string such as ``"production is locked by <@U0ALICE>: <!channel> migrating"`` mixes a mention we
mean with text a person typed, and no renderer can then make both right: escape it and the mention
breaks, leave it and ``<!channel>`` pings everyone. So the engine never builds markup. It builds a
``Message`` of segments, each saying what it is; ``bot.domain.mrkdwn.render`` escapes every
``Text`` and ``Code`` and builds a mention only from a ``Mention``'s id, and ``str()`` gives the
plain form for the CLI, logs and the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


def is_user_id(text: str) -> bool:
    """Does ``text`` have the shape of a Slack user id (``U…`` or, on Enterprise Grid, ``W…``)?"""
    return _USER_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Text:
    """Plain text (a person's reason, a service name, our own words): always escaped when rendered."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Mention:
    """A person, by Slack user id. Rendered as a mention only when ``user_id`` is shaped like one."""

    user_id: str

    def __str__(self) -> str:
        return f"@{self.user_id}"


@dataclass(frozen=True, slots=True)
class Code:
    """Inline code (a command to type, a deployment id): escaped, never a mention or a link."""

    text: str

    def __str__(self) -> str:
        return self.text


Segment: TypeAlias = Text | Mention | Code
Part: TypeAlias = "str | Segment | Message"
"""What ``Message.of`` accepts: a bare ``str`` is ``Text``; a ``Message`` is spliced in."""


@dataclass(frozen=True, slots=True)
class Message:
    """A sequence of segments; frozen, so it can sit in a notification or an ``Outcome``."""

    parts: tuple[Segment, ...] = ()

    @classmethod
    def of(cls, *parts: Part) -> Message:
        """``Message.of("locked by ", Mention(uid), ": ", Text(reason))``; bare ``str`` means ``Text``."""
        segments: list[Segment] = []
        for part in parts:
            if isinstance(part, Message):
                segments.extend(part.parts)
            elif isinstance(part, str):
                segments.append(Text(part))
            else:
                segments.append(part)
        merged: list[Segment] = []
        for segment in segments:
            if isinstance(segment, Text | Code) and not segment.text:
                continue
            if isinstance(segment, Text) and merged and isinstance(merged[-1], Text):
                # One Text per run of text, so equal messages compare equal however they were built.
                merged[-1] = Text(merged[-1].text + segment.text)
            else:
                merged.append(segment)
        return cls(tuple(merged))

    def __str__(self) -> str:
        return "".join(str(part) for part in self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __add__(self, other: Part) -> Message:
        return Message.of(self, other)

    def __radd__(self, other: Part) -> Message:
        return Message.of(other, self)

    def join(self, messages: Iterable[Part]) -> Message:
        """``messages`` with this message between each two, like ``str.join``."""
        out: list[Part] = []
        for i, message in enumerate(messages):
            if i:
                out.append(self)
            out.append(message)
        return Message.of(*out)


def join(separator: str, messages: Iterable[Part]) -> Message:
    """``messages`` with the plain ``separator`` between each two: ``join("; ", reasons)``."""
    return Message.of(separator).join(messages)
