"""The grammar of the ``/deploy`` and ``/rollback`` slash commands, as typed values.

Slack hands the bot a command name and a line of free text; policy, the orchestrator and the replies
all want a typed request or a precise complaint instead. This module is that one translation, pure
and total: ``parse`` returns a command or a ``ParseError`` for *any* input and never raises, so the
Slack layer can always answer within its 3 s.

The grammar follows hubot-deploy's conventions (see ``USAGE``). Lexical rules:

* Words are split on any whitespace (newlines and no-break spaces included). ``"double"``,
  ``'single'`` and Slack's smart quotes ``“…”`` ``‘…’`` group words, and may open mid-word
  (``--emergency="db is down"``). There are no backslash escapes: quote a ``"`` with ``'…'``.
* Keywords (subcommands, ``to``/``in``/``on``, option names, strategies) are case-insensitive;
  service, environment and version names are not.
* An unquoted ``--`` standing alone ends the words: the rest of the text, trimmed but otherwise
  verbatim, is the reason.
* A word that *starts* with a quote is taken literally, never as a keyword, option or subcommand.
  So a service named like a subcommand (``status``, ``help``, …) is read as the subcommand unless
  quoted: ``/deploy "status" 1.2`` deploys the service called ``status``. A version or environment
  spelled ``to``, ``in`` or ``on`` must be quoted likewise.
* Slack forwards the text with ``&``, ``<`` and ``>`` escaped as entities; those three (and only
  those) are unescaped first. ``/deploy`` with no text at all asks for help.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple, TypeAlias

from bot.domain.deployment import Strategy

MAX_TEXT = 4000
"""Longest command text accepted, in characters (before unescaping)."""
MAX_REASON = 500
"""Longest reason (lock, rollback, emergency) accepted, in characters."""


@dataclass(frozen=True, slots=True)
class Deploy:
    """``/deploy <service> <version>``: put one version of a service into an environment."""

    service: str
    version: str
    env: str | None = None
    """None: the playbook's default environment."""
    strategy: Strategy | None = None
    """None: the strategy the playbook sets for the environment."""
    emergency_reason: str | None = None
    """Break-glass: set when the requester asks to skip approvals and freezes (always audited)."""


@dataclass(frozen=True, slots=True)
class Status:
    """``/deploy status [service]``: what is in flight (for one service, or all)."""

    service: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """``/deploy history <service> [env]``: past deployments of a service."""

    service: str
    env: str | None = None


@dataclass(frozen=True, slots=True)
class Lock:
    """``/deploy lock <env> [service] -- <reason>``: stop deployments until unlocked."""

    env: str
    service: str | None
    """None locks every service of the environment."""
    reason: str


@dataclass(frozen=True, slots=True)
class Unlock:
    """``/deploy unlock <env> [service]``: lift a manual or guard lock."""

    env: str
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Envs:
    """``/deploy envs <service>``: the environments of a service and what runs in each."""

    service: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """``/deploy cancel <id>``: stop a deployment that has not started deploying."""

    deployment_id: str


@dataclass(frozen=True, slots=True)
class Help:
    """``/deploy help [topic]`` (or ``/deploy`` alone): show usage; ``topic`` is a key of ``USAGES``."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Rollback:
    """``/rollback <service>``: go back to the previous version (or ``to_version``)."""

    service: str
    to_version: str | None = None
    """None: the version that was live before the last deployment."""
    env: str | None = None
    """None: the playbook's default environment."""
    reason: str | None = None


Command: TypeAlias = Deploy | Status | History | Lock | Unlock | Envs | Cancel | Help | Rollback


@dataclass(frozen=True, slots=True)
class ParseError:
    """What was wrong with a command, said precisely, and the usage of the subcommand meant."""

    message: str
    """Plain text: what the person typed is echoed as typed (in ``'…'``, never backticks or markup),
    so rendering escapes all of it (``bot.domain.mrkdwn.escape``)."""
    usage: str
    """Our own text, but plain too: ``<service>`` would be a link if it were not escaped."""


USAGES: Mapping[str, str] = MappingProxyType(
    {
        "deploy": "/deploy <service> <version> [to <env>] [--strategy rolling|recreate|canary|blue-green]"
        ' [--emergency "reason"]',
        "status": "/deploy status [service]",
        "history": "/deploy history <service> [env]",
        "lock": "/deploy lock <env> [service] -- <reason>",
        "unlock": "/deploy unlock <env> [service]",
        "envs": "/deploy envs <service>",
        "cancel": "/deploy cancel <id>",
        "help": "/deploy help [topic]",
        "rollback": "/rollback <service> [to <version>] [in <env>] [-- <reason>]",
    }
)
"""Usage line of each subcommand, keyed by help topic."""

USAGE = "\n".join(USAGES.values()) + (
    "\n\nQuote text with spaces (\"like this\" or 'like this'); everything after a lone -- is the reason."
    '\nA service named like a subcommand must be quoted: /deploy "status" 1.2'
)
"""The whole usage, for ``/deploy help`` and unknown commands."""

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}
_QUOTE_FAMILIES = ('"“”', "'‘’")
# Any quote of a family closes any other of it: phones mix straight and curly quotes freely.
_CLOSERS = {quote: family for family in _QUOTE_FAMILIES for quote in family}
_ENV_WORDS = frozenset({"to", "in", "on"})
_SUBCOMMANDS = frozenset({"status", "history", "lock", "unlock", "envs", "cancel", "help"})
_STRATEGIES = "rolling, recreate, canary or blue-green"


class _Bad(Exception):
    """A complaint raised deep in the grammar; ``parse`` turns it into a ``ParseError``."""


class _Word(NamedTuple):
    text: str
    literal: bool
    """Began with a quote: never a keyword, an option or a subcommand."""

    def is_keyword(self, words: Collection[str]) -> bool:
        return not self.literal and self.text.lower() in words

    @property
    def is_option(self) -> bool:
        return not self.literal and self.text.startswith("--")


def _show(text: str) -> str:
    """``text`` quoted for an error message: shortened, control characters made visible."""
    short = text if len(text) <= 40 else text[:39] + "…"
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in short) + "'"


def _split(text: str) -> tuple[list[_Word], str | None, str | None]:
    """Words, the reason after a lone ``--`` (or None), and a complaint if a quote never closes.

    The words before an unclosed quote are still returned, so the caller can tell which
    subcommand was meant and show its usage.
    """
    words: list[_Word] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return words, None, None
        start, parts = i, []
        while i < n and not text[i].isspace():
            closers = _CLOSERS.get(text[i])
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
        words.append(_Word("".join(parts), text[start] in _CLOSERS))


class _Args:
    """A cursor over the words of one command, with the small vocabulary every subcommand uses."""

    def __init__(self, words: list[_Word], reason: str | None, topic: str, last: str) -> None:
        self._words = words
        self._pos = 0
        self._reason = reason
        self.topic = topic
        self.last = last
        """The word last read, for "expected … after '…'"."""

    def peek(self) -> _Word | None:
        return self._words[self._pos] if self._pos < len(self._words) else None

    def next(self) -> _Word:
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
        if word is None or word.is_option or word.is_keyword(_ENV_WORDS):
            return None
        return self.next().text

    def value(self, what: str) -> str:
        after = self.last
        value = self.optional()
        if value is None:
            raise _Bad(f"expected {what} after {_show(after)}")
        return value

    def option(self, known: Collection[str]) -> tuple[str, str]:
        """``--name=value`` or ``--name value`` (value "" when missing), for a name in ``known``."""
        name, equals, value = self.next().text[2:].partition("=")
        if name.lower() not in known:
            raise _Bad(f"unknown option --{_show(name)[1:-1]}")
        if not equals:
            value = self.optional() or ""
        return name.lower(), value

    def reason(self, what: str) -> str | None:
        """The text after ``--`` (None when absent or blank), checked for length."""
        reason, self._reason = self._reason, None
        return _reason(reason, what) if reason else None

    def end(self) -> None:
        """Complain about anything left over."""
        word = self.peek()
        if word is not None and word.is_option:
            raise _Bad(f"unknown option {_show(word.text.partition('=')[0])[1:-1]}")
        if word is not None:
            raise _Bad(f"unexpected {_show(word.text)} after {_show(self.last)}")
        if self._reason is not None:
            raise _Bad(f"{self.topic} takes no reason after --")


def _name(text: str, what: str) -> str:
    if _NAME.fullmatch(text):
        return text
    hint = f"; did you mean {_show(text.lower())}?" if _NAME.fullmatch(text.lower()) else ""
    raise _Bad(
        f"invalid {what} name {_show(text)}: use lower-case letters, digits, '.', '_' and '-', "
        f"starting with a letter or digit, at most 63 characters{hint}"
    )


def _optional_name(text: str | None, what: str) -> str | None:
    return None if text is None else _name(text, what)


def _version(text: str) -> str:
    if _VERSION.fullmatch(text):
        return text
    raise _Bad(
        f"invalid version {_show(text)}: use letters, digits, '.', '_', '+' and '-', "
        "starting with a letter or digit, at most 128 characters"
    )


def _once(old: str | None, new: str, what: str) -> str:
    if old is not None:
        raise _Bad(f"the {what} is given twice ({_show(old)} and {_show(new)})")
    return new


def _reason(text: str, what: str) -> str:
    text = text.strip()
    if len(text) > MAX_REASON:
        raise _Bad(f"{what} is too long ({len(text)} characters; at most {MAX_REASON})")
    return text


def _deploy(args: _Args) -> Deploy:
    service = _name(args.value("a service"), "service")
    version = _version(args.value("a version"))
    env: str | None = None
    strategy: Strategy | None = None
    emergency: str | None = None
    while (word := args.peek()) is not None:
        if args.keyword(_ENV_WORDS):
            env = _once(env, _name(args.value("an environment"), "environment"), "environment")
        elif word.is_option:
            option, value = args.option(("strategy", "emergency"))
            if (strategy if option == "strategy" else emergency) is not None:
                raise _Bad(f"--{option} is given twice")
            if option == "strategy":
                strategy = _strategy(value)
            elif not value.strip():
                raise _Bad('--emergency needs a reason, e.g. --emergency "checkout is down"')
            else:
                emergency = _reason(value, "the emergency reason")
                if args.optional() is not None:
                    raise _Bad(
                        f"unexpected {_show(args.last)}: quote an emergency reason with spaces, "
                        'e.g. --emergency "checkout is down"'
                    )
        else:
            break
    args.end()
    return Deploy(service, version, env, strategy, emergency)


def _strategy(value: str) -> Strategy:
    if not value:
        raise _Bad(f"--strategy needs a value: use {_STRATEGIES}")
    try:
        return Strategy(value.lower().replace("_", "-"))
    except ValueError:
        raise _Bad(f"unknown strategy {_show(value)}: use {_STRATEGIES}") from None


def _status(args: _Args) -> Status:
    service = _optional_name(args.optional(), "service")
    args.end()
    return Status(service)


def _history(args: _Args) -> History:
    service = _name(args.value("a service"), "service")
    env = args.value("an environment") if args.keyword(_ENV_WORDS) else args.optional()
    args.end()
    return History(service, _optional_name(env, "environment"))


def _lock(args: _Args) -> Lock:
    env = _name(args.value("an environment"), "environment")
    service = _optional_name(args.optional(), "service")
    reason = args.reason("the lock reason")
    if reason is None:
        raise _Bad("lock needs a reason after --, e.g. /deploy lock production -- incident 4711")
    args.end()
    return Lock(env, service, reason)


def _unlock(args: _Args) -> Unlock:
    env = _name(args.value("an environment"), "environment")
    service = _optional_name(args.optional(), "service")
    args.end()
    return Unlock(env, service)


def _envs(args: _Args) -> Envs:
    service = _name(args.value("a service"), "service")
    args.end()
    return Envs(service)


def _cancel(args: _Args) -> Cancel:
    given = args.value("a deployment id")
    deployment_id = given.removeprefix("#")
    if not _ID.fullmatch(deployment_id):
        raise _Bad(f"invalid deployment id {_show(given)}: ids are letters, digits, '_' and '-'")
    args.end()
    return Cancel(deployment_id)


def _help(args: _Args) -> Help:
    given = args.optional()
    args.end()
    if given is None:
        return Help()
    topic = given.lower().removeprefix("/")
    if topic not in USAGES:
        raise _Bad(f"there is no help on {_show(given)}: topics are {', '.join(USAGES)}")
    return Help(topic)


def _rollback(args: _Args) -> Rollback | Help:
    if args.keyword({"help"}):
        args.end()
        return Help("rollback")
    service = _name(args.value("a service"), "service")
    to_version: str | None = None
    env: str | None = None
    while args.peek() is not None:
        if args.keyword({"to"}):
            to_version = _once(to_version, _version(args.value("a version")), "version")
        elif args.keyword({"in", "on"}):
            env = _once(env, _name(args.value("an environment"), "environment"), "environment")
        else:
            break
    reason = args.reason("the rollback reason")
    args.end()
    return Rollback(service, to_version, env, reason)


_PARSERS: Mapping[str, Callable[[_Args], Command]] = MappingProxyType(
    {
        "deploy": _deploy,
        "status": _status,
        "history": _history,
        "lock": _lock,
        "unlock": _unlock,
        "envs": _envs,
        "cancel": _cancel,
        "help": _help,
        "rollback": _rollback,
    }
)


def parse(command: str, text: str) -> Command | ParseError:
    """Read a slash command (``/deploy`` or ``/rollback``) and the text Slack sent after it.

    Never raises: anything that is not a valid command comes back as a ``ParseError`` naming the
    problem, with the usage of the subcommand the text was aimed at.
    """
    name = command.strip().removeprefix("/").lower()
    if name not in ("deploy", "rollback"):
        return ParseError(f"unknown command {_show(command)}: use /deploy or /rollback", USAGE)
    if len(text) > MAX_TEXT:
        return ParseError(
            f"the command is too long ({len(text)} characters; at most {MAX_TEXT})", USAGES[name]
        )
    words, reason, unclosed = _split(_ENTITY.sub(lambda m: _UNESCAPED[m[1]], text))
    topic = name
    if name == "deploy" and words and words[0].is_keyword(_SUBCOMMANDS):
        topic = words[0].text.lower()
        words = words[1:]
    if unclosed is not None:
        return ParseError(unclosed, USAGES[topic])
    if name == "deploy" and topic == "deploy" and not words and reason is None:
        return Help()
    try:
        last = topic if topic in _SUBCOMMANDS else "/" + name
        return _PARSERS[topic](_Args(words, reason, topic, last))
    except _Bad as bad:
        return ParseError(str(bad), USAGES[topic])
