"""The words of a slash command: quotes, the reason after ``--``, and a cursor over them.

``bot.domain.commands`` is the grammar (which subcommand takes what); this is what it reads: the
lexical rules spelled out in its docstring (quotes of either family, a lone ``--`` ending the
words, literal words never taken as keywords) and ``Args``, the small vocabulary every subcommand
uses to read its words. ``BadCommand`` is the complaint raised deep in either; ``parse`` turns it
into a ``ParseError``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

MAX_REASON = 500
"""Longest reason (lock, rollback, emergency) accepted, in characters."""

QUOTE_FAMILIES = ('"“”', "'‘’")
# Any quote of a family closes any other of it: phones mix straight and curly quotes freely.
CLOSERS = {quote: family for family in QUOTE_FAMILIES for quote in family}
ENV_WORDS = frozenset({"to", "in", "on"})


class BadCommand(Exception):
    """A complaint raised deep in the grammar; ``parse`` turns it into a ``ParseError``."""


class Word(NamedTuple):
    text: str
    literal: bool
    """Began with a quote: never a keyword, an option or a subcommand."""

    def is_keyword(self, words: Collection[str]) -> bool:
        return not self.literal and self.text.lower() in words

    @property
    def is_option(self) -> bool:
        return not self.literal and self.text.startswith("--")


def show(text: str) -> str:
    """``text`` quoted for an error message: shortened, control characters made visible."""
    short = text if len(text) <= 40 else text[:39] + "…"
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in short) + "'"


def split_words(text: str) -> tuple[list[Word], str | None, str | None]:
    """Words, the reason after a lone ``--`` (or None), and a complaint if a quote never closes.

    The words before an unclosed quote are still returned, so the caller can tell which
    subcommand was meant and show its usage.
    """
    words: list[Word] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return words, None, None
        start, parts = i, []
        while i < n and not text[i].isspace():
            closers = CLOSERS.get(text[i])
            if closers is None:
                parts.append(text[i])
                i += 1
                continue
            end = next((j for j in range(i + 1, n) if text[j] in closers), None)
            if end is None:
                return words, None, f"the quote {text[i]} at character {i + 1} is never closed"
            parts.append(text[i + 1 : end])
            i = end + 1
        if text[start:i] == "--":
            return words, text[i:].strip(), None
        words.append(Word("".join(parts), text[start] in CLOSERS))


class Args:
    """A cursor over the words of one command, with the small vocabulary every subcommand uses."""

    def __init__(self, words: list[Word], reason: str | None, topic: str, last: str) -> None:
        self._words = words
        self._pos = 0
        self._reason = reason
        self.topic = topic
        self.last = last
        """The word last read, for "expected … after '…'"."""

    def peek(self) -> Word | None:
        return self._words[self._pos] if self._pos < len(self._words) else None

    def next(self) -> Word:
        word = self._words[self._pos]
        self._pos += 1
        self.last = word.text
        return word

    def keyword(self, words: Collection[str]) -> bool:
        """Read the next word if it is one of ``words``."""
        word = self.peek()
        if word is None or not word.is_keyword(words):
            return False
        self.next()
        return True

    def optional(self) -> str | None:
        """The next word if it is a value (not an option or ``to``/``in``/``on``), else None."""
        word = self.peek()
        if word is None or word.is_option or word.is_keyword(ENV_WORDS):
            return None
        return self.next().text

    def value(self, what: str) -> str:
        after = self.last
        value = self.optional()
        if value is None:
            raise BadCommand(f"expected {what} after {show(after)}")
        return value

    def option(self, known: Collection[str]) -> tuple[str, str]:
        """``--name=value`` or ``--name value`` (value "" when missing), for a name in ``known``."""
        name, equals, value = self.next().text[2:].partition("=")
        if name.lower() not in known:
            raise BadCommand(f"unknown option --{show(name)[1:-1]}")
        if not equals:
            value = self.optional() or ""
        return name.lower(), value

    def reason(self, what: str) -> str | None:
        """The text after ``--`` (None when absent or blank), checked for length."""
        reason, self._reason = self._reason, None
        return reason_text(reason, what) if reason else None

    def end(self) -> None:
        """Complain about anything left over."""
        word = self.peek()
        if word is not None and word.is_option:
            raise BadCommand(f"unknown option {show(word.text.partition('=')[0])[1:-1]}")
        if word is not None:
            raise BadCommand(f"unexpected {show(word.text)} after {show(self.last)}")
        if self._reason is not None:
            raise BadCommand(f"{self.topic} takes no reason after --")


def reason_text(text: str, what: str) -> str:
    text = text.strip()
    if len(text) > MAX_REASON:
        raise BadCommand(f"{what} is too long ({len(text)} characters; at most {MAX_REASON})")
    return text
