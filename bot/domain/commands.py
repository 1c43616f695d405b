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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeAlias

from bot.domain.command_words import (
    ENV_WORDS,
    Args,
    BadCommand,
    reason_text,
    show,
    split_words,
)
from bot.domain.command_words import MAX_REASON as MAX_REASON  # re-exported: the Slack modals use it
from bot.domain.deployment import Strategy

MAX_TEXT = 4000
"""Longest command text accepted, in characters (before unescaping)."""


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
_SUBCOMMANDS = frozenset({"status", "history", "lock", "unlock", "envs", "cancel", "help"})
_STRATEGIES = "rolling, recreate, canary or blue-green"


def _name(text: str, what: str) -> str:
    if _NAME.fullmatch(text):
        return text
    hint = f"; did you mean {show(text.lower())}?" if _NAME.fullmatch(text.lower()) else ""
    raise BadCommand(
        f"invalid {what} name {show(text)}: use lower-case letters, digits, '.', '_' and '-', "
        f"starting with a letter or digit, at most 63 characters{hint}"
    )


def _optional_name(text: str | None, what: str) -> str | None:
    return None if text is None else _name(text, what)


def _version(text: str) -> str:
    if _VERSION.fullmatch(text):
        return text
    raise BadCommand(
        f"invalid version {show(text)}: use letters, digits, '.', '_', '+' and '-', "
        "starting with a letter or digit, at most 128 characters"
    )


def _once(old: str | None, new: str, what: str) -> str:
    if old is not None:
        raise BadCommand(f"the {what} is given twice ({show(old)} and {show(new)})")
    return new


def _deploy(args: Args) -> Deploy:
    service = _name(args.value("a service"), "service")
    version = _version(args.value("a version"))
    env: str | None = None
    strategy: Strategy | None = None
    emergency: str | None = None
    while (word := args.peek()) is not None:
        if args.keyword(ENV_WORDS):
            env = _once(env, _name(args.value("an environment"), "environment"), "environment")
        elif word.is_option:
            option, value = args.option(("strategy", "emergency"))
            if (strategy if option == "strategy" else emergency) is not None:
                raise BadCommand(f"--{option} is given twice")
            if option == "strategy":
                strategy = _strategy(value)
            elif not value.strip():
                raise BadCommand('--emergency needs a reason, e.g. --emergency "checkout is down"')
            else:
                emergency = reason_text(value, "the emergency reason")
                if args.optional() is not None:
                    raise BadCommand(
                        f"unexpected {show(args.last)}: quote an emergency reason with spaces, "
                        'e.g. --emergency "checkout is down"'
                    )
        else:
            break
    args.end()
    return Deploy(service, version, env, strategy, emergency)


def _strategy(value: str) -> Strategy:
    if not value:
        raise BadCommand(f"--strategy needs a value: use {_STRATEGIES}")
    try:
        return Strategy(value.lower().replace("_", "-"))
    except ValueError:
        raise BadCommand(f"unknown strategy {show(value)}: use {_STRATEGIES}") from None


def _status(args: Args) -> Status:
    service = _optional_name(args.optional(), "service")
    args.end()
    return Status(service)


def _history(args: Args) -> History:
    service = _name(args.value("a service"), "service")
    env = args.value("an environment") if args.keyword(ENV_WORDS) else args.optional()
    args.end()
    return History(service, _optional_name(env, "environment"))


def _lock(args: Args) -> Lock:
    env = _name(args.value("an environment"), "environment")
    service = _optional_name(args.optional(), "service")
    reason = args.reason("the lock reason")
    if reason is None:
        raise BadCommand("lock needs a reason after --, e.g. /deploy lock production -- incident 4711")
    args.end()
    return Lock(env, service, reason)


def _unlock(args: Args) -> Unlock:
    env = _name(args.value("an environment"), "environment")
    service = _optional_name(args.optional(), "service")
    args.end()
    return Unlock(env, service)


def _envs(args: Args) -> Envs:
    service = _name(args.value("a service"), "service")
    args.end()
    return Envs(service)


def _cancel(args: Args) -> Cancel:
    given = args.value("a deployment id")
    deployment_id = given.removeprefix("#")
    if not _ID.fullmatch(deployment_id):
        raise BadCommand(f"invalid deployment id {show(given)}: ids are letters, digits, '_' and '-'")
    args.end()
    return Cancel(deployment_id)


def _help(args: Args) -> Help:
    given = args.optional()
    args.end()
    if given is None:
        return Help()
    topic = given.lower().removeprefix("/")
    if topic not in USAGES:
        raise BadCommand(f"there is no help on {show(given)}: topics are {', '.join(USAGES)}")
    return Help(topic)


def _rollback(args: Args) -> Rollback | Help:
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


_PARSERS: Mapping[str, Callable[[Args], Command]] = MappingProxyType(
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
        return ParseError(f"unknown command {show(command)}: use /deploy or /rollback", USAGE)
    if len(text) > MAX_TEXT:
        return ParseError(
            f"the command is too long ({len(text)} characters; at most {MAX_TEXT})", USAGES[name]
        )
    words, reason, unclosed = split_words(_ENTITY.sub(lambda m: _UNESCAPED[m[1]], text))
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
        return _PARSERS[topic](Args(words, reason, topic, last))
    except BadCommand as bad:
        return ParseError(str(bad), USAGES[topic])
