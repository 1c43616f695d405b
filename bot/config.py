"""Shipthread's own settings, and the YAML reader that settings and playbooks both go through.

Settings come from ``config/shipthread.yaml`` (or ``$SHIPTHREAD_CONFIG``), then the environment:
endpoint variables (``SLACK_API_URL``, ``JENKINS_URL``, ...) override the file, and secrets
(``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``, ``SLACK_APP_TOKEN``, ``JENKINS_USER``,
``JENKINS_TOKEN``) come from the environment only. A config file holding anything that looks like
a secret is refused, so a token never lands in a repository; secrets are kept as ``SecretStr`` so
no repr or log line shows them.

The YAML reader keeps the line of every key and list item, so that every mistake, in config or in
a playbook, is reported as ``path:line: field.path: message`` and never as a traceback.

The reader also stands between hostile or broken files and everything after it, so that loading
never crashes and never hangs, whatever the file holds:

- a file over 128 KiB is refused (playbooks and configs are a few KB; the pure-Python YAML
  scanner, the one that keeps exact lines and messages, needs up to a few microseconds a character,
  so this keeps the worst file well under a second); bytes that are not UTF-8 are refused with the
  line of the first bad byte, a control character with its line (YAML allows only printable ones);
- nesting is bounded (32 levels) while the document is composed, before any code recurses over it;
- anchors and aliases are supported (operators share a guard or an environment with them, and merge
  keys ``<<: *base`` are common), but an alias of a value that contains it is refused, and a file
  may hold at most 5,000 values with every alias counted as the values it stands for, so an alias
  bomb is refused after a few milliseconds instead of being expanded by the steps that walk the data;
- a value the YAML library cannot build (``2024-02-30``, a 5,000-digit number) is refused at its line.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from bot.domain.chart import ChartPolicy
from bot.domain.locks import FreezeWindow
from bot.domain.playbook import Channel, Duration, FieldErrors, Loc, LongDuration, Name, SourceMap, dotted
from bot.errors import ConfigError

DEFAULT_CONFIG = "config/shipthread.yaml"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./shipthread.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"

ENV_OVERRIDES: Mapping[str, Loc] = {
    "SHIPTHREAD_DATABASE_URL": ("database_url",),
    "SLACK_API_URL": ("slack", "api_url"),
    "JENKINS_URL": ("jenkins", "url"),
    "PROMETHEUS_URL": ("prometheus", "url"),
    "KUBECONFIG": ("kubeconfig",),
    "SHIPTHREAD_PLAYBOOKS": ("playbooks_dir",),
}
"""Environment variables that override a config key (empty values are ignored)."""

SECRET_VARIABLES: tuple[str, ...] = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "JENKINS_USER",
    "JENKINS_TOKEN",
)
"""The only place secrets come from."""

_MAX_FILE_BYTES = 128 * 1024
_MAX_DEPTH = 32
"""Nesting levels (mappings and lists) a file may have; playbooks need about 8."""
_MAX_VALUES = 5_000
"""Values (keys, scalars, collections) a file may hold, aliases expanded; playbooks hold a few hundred."""


# ---------------------------------------------------------------------------------------------------
# Errors with file, line and field


_MAX_PROBLEM_CHARS = 500
"""A message quotes the value it refuses: a 100 KB value must not become a 100 KB line."""


class ConfigProblems(ConfigError):
    """One or more mistakes in config files or playbooks, each a ``path:line: field: message`` line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(
            p if len(p) <= _MAX_PROBLEM_CHARS else p[: _MAX_PROBLEM_CHARS - 1] + "…" for p in problems
        )
        super().__init__("\n".join(self.problems))


def problem_at(source: SourceMap, loc: Iterable[str | int], message: str) -> str:
    """``path:line: field.path: message`` for the deepest part of ``loc`` written in the file."""
    line, found = source.locate(loc)
    if found and message.startswith(f"unknown key '{found[-1]}'"):
        found = found[:-1]  # the line is the key's, the field its parent's: the message names the key
    field = dotted(found)
    where = f"{source.path}:{line}" if source.lines else source.path
    return f"{where}: {field}: {message}" if field else f"{where}: {message}"


def located_errors(exc: ValidationError, model: type[BaseModel]) -> list[tuple[Loc, str]]:
    """Pydantic's errors as (location, short message), cross-field ``FieldErrors`` expanded."""
    located: list[tuple[Loc, str]] = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldErrors):
            located += [((*loc, *inner), message) for inner, message in cause.problems]
        else:
            located.append((loc, _message(error, model)))
    return [(loc, m) for loc, m in located if not _follow_on(loc, m, located)]


def validation_problems(exc: ValidationError, source: SourceMap, model: type[BaseModel]) -> list[str]:
    """Pydantic's errors as ``path:line: field: message`` lines, in file order."""
    located = located_errors(exc, model)
    located.sort(key=lambda pair: source.locate(pair[0])[0])
    return [problem_at(source, loc, message) for loc, message in located]


def _follow_on(loc: Loc, message: str, located: Sequence[tuple[Loc, str]]) -> bool:
    # Pydantic reports "needs at least 1 item" on a list whose only items were all invalid:
    # the items' own errors say it better.
    return message.startswith("must not be empty") and any(
        len(other) > len(loc) and other[: len(loc)] == loc for other, _ in located
    )


_MESSAGES: Mapping[str, str] = {
    "float_parsing": "not a number",
    "float_type": "not a number",
    "finite_number": "not a finite number",
    "int_parsing": "not a whole number",
    "int_type": "not a whole number",
    "int_from_float": "not a whole number",
    "bool_parsing": "not true or false",
    "bool_type": "not true or false",
    "string_type": "not a string",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "time_delta_parsing": "not a duration (use e.g. 30s, 5m, 1h30m)",
    "time_delta_type": "not a duration (use e.g. 30s, 5m, 1h30m)",
}


def _message(error: Any, model: type[BaseModel]) -> str:
    """A short message people understand, for one pydantic error."""
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    loc = error["loc"]
    if kind == "missing":
        return f"missing required field '{loc[-1]}'"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _known_keys(model), n=1)
        return f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in ("enum", "literal_error"):
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"needs at least {least} items"
    if kind in ("too_long", "string_too_long"):
        return f"has more than {ctx.get('max_length')} items"
    bounds = {"greater_than_equal": "at least", "greater_than": "more than"}
    bounds |= {"less_than_equal": "at most", "less_than": "less than"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "")
        return f"must be {bounds[kind]} {limit}"
    text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return text[:1].lower() + text[1:]


@cache
def _known_keys(model: type[BaseModel]) -> list[str]:
    """Every key the model accepts anywhere, for "did you mean" suggestions."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    keys.update(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(model.model_json_schema())
    return sorted(keys)


# ---------------------------------------------------------------------------------------------------
# YAML with line numbers


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed YAML file and the line of each of its keys and list items."""

    data: Any
    source: SourceMap


_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(path: str | os.PathLike[str], *, shown: str | None = None) -> YamlDocument:
    """Read one YAML file (safe loader), refusing duplicate keys; ``ConfigProblems`` on any mistake.

    ``shown`` is the path used in messages (default: ``path`` as given).
    """
    name = shown or str(path)
    file = Path(path)
    try:
        mode = file.stat().st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
            raise ConfigProblems([f"{name}:1: not a regular file"])
        with file.open("rb") as stream:
            raw = stream.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigProblems([f"{name}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigProblems([f"{name}: is a folder, not a file"]) from None
    except OSError as exc:
        raise ConfigProblems([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > _MAX_FILE_BYTES:
        size = f"{_MAX_FILE_BYTES} bytes ({_MAX_FILE_BYTES // 1024} KiB)"
        raise ConfigProblems([f"{name}:1: larger than {size}: not a config file"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigProblems(
            [
                f"{name}:{line}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte offset "
                f"{exc.start} ({exc.reason})"
            ]
        ) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, name: str) -> YamlDocument:
    """Parse YAML ``text`` read from ``name``; see ``read_yaml``."""
    try:
        loader = _BoundedLoader(text)  # the reader refuses non-printable characters right here
    except yaml.reader.ReaderError as exc:
        raise ConfigProblems([_reader_problem(text, name, exc)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, SourceMap(name, {(): 1}))
        duplicates = list(_duplicates(loader, node, (), name))
        if duplicates:
            raise ConfigProblems(duplicates)
        data = loader.construct_document(node)
        lines: dict[Loc, int] = {}
        _record_lines(loader, node, (), lines)
        lines[()] = node.start_mark.line + 1
        return YamlDocument(data, SourceMap(name, lines))
    except _Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise ConfigProblems([f"{name}:{line}: {exc.problem}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or "invalid YAML"
        if exc.context:
            context = exc.context
            if exc.context_mark is not None and exc.context_mark is not mark:
                context += f" at line {exc.context_mark.line + 1}"
            what += f" ({context})"
        raise ConfigProblems([f"{name}:{line}: YAML syntax error: {what}"]) from None
    except yaml.reader.ReaderError as exc:
        raise ConfigProblems([_reader_problem(text, name, exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigProblems([f"{name}:1: YAML syntax error: {exc}"]) from None
    finally:
        loader.dispose()


def _reader_problem(text: str, name: str, exc: yaml.reader.ReaderError) -> str:
    # For text (not bytes) input the reader's position is an index into the text.
    position = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, position) + 1
    character = exc.character if isinstance(exc.character, str) else text[position : position + 1]
    kind = "control character" if unicodedata.category(character[:1] or " ") == "Cc" else "character"
    return f"{name}:{line}: {kind} {character!r} is not allowed in YAML"


class _Refused(yaml.MarkedYAMLError):
    """A well-formed file this reader will not take (too deep, a recursive alias, an alias bomb)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


_COLLECTION_STARTS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, with the limits of the module docstring enforced while composing.

    PyYAML's parser is a state machine, but its scanner looks ahead once per open flow level, its
    composer and constructor recurse once per level, and it shares an anchored node among its
    aliases, so everything that walks the data afterwards (duplicate keys, lines, secrets,
    validation) sees each alias expanded. Counting here, as the events arrive, stops a bad file at
    its first excess, before any of that work is done.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()
        """Anchors of the collections being composed: an alias of one of them is recursive."""
        self._values = 0
        self._sizes: dict[str, int] = {}
        """Anchor → how many values the anchored node holds, itself included."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead for a ':' after every open '[' or '{' (a possible key), which costs
        # quadratic time in the flow depth: a line of '[' must stop here, before the composer sees it.
        if self.flow_level >= _MAX_DEPTH:
            raise _Refused(f"nested more than {_MAX_DEPTH} levels deep", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            anchor = str(event.anchor)
            if anchor in self._open:
                raise _Refused(f"alias *{anchor} refers to a value that contains it", event.start_mark)
            node = super().compose_node(parent, index)  # refuses an undefined alias
            self._count(self._sizes.get(anchor, 1), event.start_mark, alias=True)
            return node
        before = self._values
        self._count(1, event.start_mark, alias=False)
        collection = isinstance(event, _COLLECTION_STARTS)
        if collection:
            if self._depth >= _MAX_DEPTH:
                raise _Refused(f"nested more than {_MAX_DEPTH} levels deep", event.start_mark)
            self._depth += 1
            if event.anchor is not None:
                self._open.add(event.anchor)
        node = super().compose_node(parent, index)
        if collection:
            self._depth -= 1
            self._open.discard(event.anchor)
        if event.anchor is not None:
            self._sizes[event.anchor] = self._values - before
        return node

    def _count(self, values: int, mark: Any, *, alias: bool) -> None:
        self._values += values
        if self._values > _MAX_VALUES:
            what = "aliases expand this file to" if alias else "this file holds"
            raise _Refused(f"{what} more than {_MAX_VALUES} values", mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A value the resolver took for a date or a number may still fail to build (2024-02-30,
        # "!!timestamp soon", 5,000 digits): name the value's line rather than crash.
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            reason = str(exc).split(";")[0]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value ({reason})", node.start_mark
            ) from None


def _key(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_object(node)
        if isinstance(value, str | int | float | bool) or value is None:
            return value
    return f"<{node.tag} at line {node.start_mark.line + 1}>"


# The composer has refused recursive aliases and bounded the expanded size, so these walks end,
# and quickly, even though they visit an aliased node once per alias.


def _duplicates(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, name: str) -> Iterator[str]:
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = _key(loader, key_node)
            line = key_node.start_mark.line + 1
            if key in first:
                where = f"{dotted(loc)}: " if loc else ""
                yield f"{name}:{line}: {where}duplicate key '{key}' (first at line {first[key]})"
            else:
                first[key] = line
            yield from _duplicates(loader, value_node, (*loc, key), name)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicates(loader, item, (*loc, index), name)


def _record_lines(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    # After construction, merge keys ("<<: *base") are flattened into node.value, explicit keys last.
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            here = (*loc, _key(loader, key_node))
            lines[here] = key_node.start_mark.line + 1
            _record_lines(loader, value_node, here, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _record_lines(loader, item, (*loc, index), lines)


# ---------------------------------------------------------------------------------------------------
# Secrets stay out of files

_SECRET_KEY = re.compile(r"token|secret|passw|credential|private[_-]?key|api[_-]?key", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^\s*(xox[abposr]-|xapp-)")
_NAMED_BY_PEOPLE: frozenset[Loc] = frozenset({("approver_groups",), ("clusters",)})
"""Mappings whose keys are names people chose (a group may be called "token-team")."""


def _secret_hint(loc: Loc) -> str:
    key = str(loc[-1]).lower()
    section = str(loc[0]).lower() if len(loc) > 1 else ""
    if section == "slack" or "slack" in key:
        if "sign" in key:
            return "SLACK_SIGNING_SECRET"
        return "SLACK_APP_TOKEN" if "app" in key else "SLACK_BOT_TOKEN"
    if section == "jenkins" or "jenkins" in key:
        return "JENKINS_USER" if "user" in key else "JENKINS_TOKEN"
    return ", ".join(SECRET_VARIABLES)


def secret_locations(data: Any, loc: Loc = (), *, check_keys: bool = True) -> Iterator[tuple[Loc, str]]:
    """Keys (unless ``check_keys`` is false) and values of ``data`` that look like secrets, each with
    a message saying where the secret belongs instead."""
    if isinstance(data, Mapping):
        judge_keys = check_keys and loc not in _NAMED_BY_PEOPLE
        for key, value in data.items():
            here = (*loc, key)
            is_user = loc[:1] == ("jenkins",) and str(key).lower() in ("user", "username")
            if judge_keys and isinstance(key, str) and (_SECRET_KEY.search(key) or is_user):
                yield (
                    here,
                    f"secrets are read only from the environment, never from files: set {_secret_hint(here)}",
                )
            else:
                yield from secret_locations(value, here, check_keys=check_keys)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from secret_locations(item, (*loc, index), check_keys=check_keys)
    elif isinstance(data, str):
        if _SECRET_VALUE.match(data):
            yield loc, "this looks like a Slack token: secrets are read only from the environment"
        elif "://" in data and _url_password(data):
            yield loc, "a password in a URL: put the URL in the environment (e.g. SHIPTHREAD_DATABASE_URL)"


def _url_password(text: str) -> bool:
    try:
        return bool(urlsplit(text.strip()).password)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------------
# Settings


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {redact_url(value)!r}")
    if parts.password:
        raise ValueError("credentials in a URL: set JENKINS_USER and JENKINS_TOKEN in the environment")
    return value


def _api_base(value: str) -> str:
    # slack-sdk joins method names onto the base URL: without the trailing slash "/api" is lost.
    return value if value.endswith("/") else value + "/"


HttpUrl = Annotated[str, AfterValidator(_http_url)]

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SUBTEAM_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_HANDLE = re.compile(r"^@[a-z0-9][a-z0-9._-]*$")


def _member(value: str) -> str:
    if not (_USER_ID.match(value) or _SUBTEAM_ID.match(value) or _HANDLE.match(value)):
        raise ValueError(
            f"not a Slack user or user group: {value!r} "
            "(a user id like U0123ABCD, a user-group id like S0123ABCD, or @handle)"
        )
    return value


def is_user_id(member: str) -> bool:
    """True for a single person (``U…``/``W…``), False for a user group (``S…`` or ``@handle``)."""
    return bool(_USER_ID.match(member))


Member = Annotated[str, AfterValidator(_member)]

_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {m: i for i, m in enumerate(_MONTHS, start=1)},
    {d: i for i, d in enumerate(_WEEKDAYS)},
)
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_ITEM = re.compile(r"^(\*|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


def _cron(expression: str) -> str:
    """A light check of five-field cron syntax; ``bot.domain.cron`` does the full parse at run time."""
    text = expression.strip()
    if text.lower() in _CRON_MACROS:
        return expression
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expression!r} has {len(fields)} fields, needs 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    for value, (low, high), names, label in zip(fields, _CRON_RANGES, _CRON_NAMES, _CRON_FIELDS, strict=True):
        for item in value.split(","):
            match = _CRON_ITEM.match(item)
            if not match or match.group(4) == "0":
                raise ValueError(f"cron {expression!r}: bad {label} {item!r}")
            for bound in (match.group(2), match.group(3)):
                if bound is None:
                    continue
                number = names.get(bound.lower()) if not bound.isdigit() else int(bound)
                if number is None or not low <= number <= high:
                    raise ValueError(f"cron {expression!r}: {label} {bound!r} is not in {low}-{high}")
    return expression


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Settings):
    """Where the Slack Web API is, and where threads go by default."""

    api_url: Annotated[HttpUrl, AfterValidator(_api_base)] = DEFAULT_SLACK_API_URL
    """Web API base URL (an emulator or proxy in tests); env ``SLACK_API_URL``."""
    default_channel: Channel | None = None
    """Channel for environments whose playbook names none."""
    timeout: Duration = timedelta(seconds=10)
    posts_per_second: float = Field(default=1.0, gt=0)
    """The notifier's pace of chat.postMessage per channel (Slack allows about 1/s)."""
    updates_per_minute: float = Field(default=45.0, gt=0)
    """The notifier's budget of chat.update per workspace (Slack's Tier 3 is about 50/min)."""
    charts: ChartPolicy = ChartPolicy.PROBLEMS
    """Which guard verdicts get a chart in their thread: ``always``, ``problems`` (a breach, a hold,
    the end of a post-rollback watch) or ``never``."""


class JenkinsSettings(_Settings):
    """The Jenkins server; user and API token come from ``JENKINS_USER``/``JENKINS_TOKEN``."""

    url: HttpUrl | None = None
    """env ``JENKINS_URL``."""
    timeout: Duration = timedelta(seconds=10)


class PrometheusSettings(_Settings):
    """The Prometheus server the QoS guard queries."""

    url: HttpUrl | None = None
    """env ``PROMETHEUS_URL``."""
    timeout: Duration = timedelta(seconds=10)


class ClusterSettings(_Settings):
    """How to reach one Kubernetes cluster: a kubeconfig context, an API server URL, or the
    service account of the pod the bot runs in."""

    context: str | None = Field(default=None, min_length=1)
    """A context of the kubeconfig (``KUBECONFIG`` or ``kubeconfig``)."""
    server: HttpUrl | None = None
    """An API server URL, for clusters (or emulators) reached without a kubeconfig."""
    insecure: bool = False
    """Skip TLS verification of ``server`` (labs and emulators only)."""
    in_cluster: bool = False
    """The cluster the bot runs in, with its pod's service account token (``deploy/kubernetes``)."""

    @model_validator(mode="after")
    def _one_way_in(self) -> ClusterSettings:
        if (self.context is not None) + (self.server is not None) + self.in_cluster != 1:
            raise ValueError(
                "give either context (a kubeconfig context), server (an API server URL) "
                "or in_cluster: true (the pod's service account)"
            )
        if self.insecure and self.server is None:
            raise FieldErrors([(("insecure",), "insecure applies only to server")])
        return self


class FreezeWindowSpec(_Settings):
    """A recurring freeze as written in config; ``to_domain()`` gives the domain's ``FreezeWindow``."""

    name: str = Field(min_length=1)
    cron: Annotated[str, AfterValidator(_cron)]
    """When it starts (UTC), five-field cron: ``0 16 * * fri`` is Friday 16:00."""
    duration: LongDuration
    envs: tuple[Name, ...] = ()
    """Environments it freezes; empty: all."""
    reason: str = ""

    @model_validator(mode="after")
    def _positive(self) -> FreezeWindowSpec:
        if self.duration <= timedelta(0):
            raise FieldErrors([(("duration",), "duration must be positive")])
        return self

    def to_domain(self) -> FreezeWindow:
        return FreezeWindow(self.name, self.cron, self.duration, self.envs, self.reason)


class ConcurrencyPolicy(StrEnum):
    """What a second request for a service and environment gets while one is in flight."""

    QUEUE = "queue"
    """It waits, and starts when the first one ends."""
    REFUSE = "refuse"
    """It is refused, with a message naming the deployment in flight."""


class Secrets(BaseModel):
    """Credentials, from the environment only. ``SecretStr`` keeps them out of repr and logs."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    jenkins_user: SecretStr | None = None
    jenkins_token: SecretStr | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Secrets:
        """The secrets set (non-empty) in ``environ``."""
        return cls(**{name.lower(): environ[name] for name in SECRET_VARIABLES if environ.get(name)})


class Settings(_Settings):
    """Everything the bot needs besides playbooks. Build with ``load_settings``."""

    database_url: str = Field(default=DEFAULT_DATABASE_URL, min_length=1)
    """SQLAlchemy async URL; env ``SHIPTHREAD_DATABASE_URL`` (the place for one with a password)."""
    playbooks_dir: str = Field(default="playbooks", min_length=1)
    """env ``SHIPTHREAD_PLAYBOOKS``."""
    kubeconfig: str | None = None
    """Path of the kubeconfig holding the clusters' contexts; env ``KUBECONFIG``."""
    slack: SlackSettings = SlackSettings()
    jenkins: JenkinsSettings = JenkinsSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    clusters: dict[Name, ClusterSettings] = Field(default_factory=dict)
    approver_groups: dict[Name, tuple[Member, ...]] = Field(default_factory=dict)
    """Group name → Slack user ids (``U…``) and/or user groups (``S…`` ids or ``@handles``)."""
    break_glass: Name | None = None
    """The group whose members may deploy with ``--emergency`` (skipping approvals and freezes)."""
    freeze_windows: tuple[FreezeWindowSpec, ...] = ()
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy.REFUSE
    approval_ttl: Duration = timedelta(hours=1)
    """How long approvals may take, unless the environment says otherwise."""
    secrets: Secrets = Secrets()
    """From the environment only (``load_settings`` refuses them in files)."""

    _source: SourceMap | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        problems: list[tuple[Loc, str]] = []
        for name, members in self.approver_groups.items():
            if not members:
                problems.append((("approver_groups", name), "a group needs at least one member"))
            for index, member in enumerate(members):
                if member in members[:index]:
                    problems.append((("approver_groups", name, index), f"{member} is listed twice"))
        if self.break_glass is not None and self.break_glass not in self.approver_groups:
            known = ", ".join(self.approver_groups) or "none"
            problems.append(
                (("break_glass",), f"unknown group {self.break_glass!r} (approver_groups: {known})")
            )
        seen: set[str] = set()
        for index, window in enumerate(self.freeze_windows):
            if window.name in seen:
                problems.append((("freeze_windows", index, "name"), f"freeze window {window.name!r} twice"))
            seen.add(window.name)
        if self.approval_ttl <= timedelta(0):
            problems.append((("approval_ttl",), "approval_ttl must be positive"))
        if problems:
            raise FieldErrors(problems)
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # database_url may carry a password (from the environment): never show it.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "database_url" else value

    @property
    def source(self) -> SourceMap | None:
        """Where the settings were read (None: defaults and environment only)."""
        return self._source

    def group_size(self, group: str) -> int | None:
        """How many people ``group`` has, or None when it includes user groups (size unknown here)."""
        members = self.approver_groups.get(group)
        if members is None or not all(is_user_id(m) for m in members):
            return None
        return len(members)

    def freezes(self) -> tuple[FreezeWindow, ...]:
        """The freeze windows as domain values."""
        return tuple(window.to_domain() for window in self.freeze_windows)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``path`` (default ``$SHIPTHREAD_CONFIG``, else ``config/shipthread.yaml`` if it
    exists, else defaults only), overridden by the environment; ``ConfigProblems`` on any mistake.

    A file named explicitly (argument or ``SHIPTHREAD_CONFIG``) must exist; the default one may not.
    """
    env = os.environ if environ is None else environ
    chosen = str(path) if path is not None else env.get("SHIPTHREAD_CONFIG") or None
    if chosen is None and Path(DEFAULT_CONFIG).is_file():
        chosen = DEFAULT_CONFIG
    document = YamlDocument({}, SourceMap("(no config file)")) if chosen is None else read_yaml(chosen)
    source = document.source
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ConfigProblems(
            [problem_at(source, (), "the config must be a mapping of keys (slack, clusters, ...)")]
        )
    secrets = [problem_at(source, loc, message) for loc, message in secret_locations(data)]
    if secrets:
        raise ConfigProblems(secrets)
    data, from_env = _with_environment(data, env)
    data["secrets"] = Secrets.from_environ(env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigProblems(_settings_problems(exc, source, from_env)) from None
    if chosen is not None:
        settings._source = source
    return settings


def _with_environment(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[Loc, str]]:
    """A copy of ``data`` with the environment's overrides, and which variable set which key."""
    # An empty key ("slack:" with its lines commented out) means the defaults, not a mistake.
    merged = {key: value for key, value in data.items() if value is not None}
    from_env: dict[Loc, str] = {}
    for variable, loc in ENV_OVERRIDES.items():
        value = environ.get(variable)
        if not value:
            continue
        target: Any = merged
        for part in loc[:-1]:
            section = target.get(part, {})
            if not isinstance(section, dict):
                break  # the file's section is malformed: let validation say so
            copy = dict(section)
            target[part] = copy
            target = copy
        else:
            target[loc[-1]] = value
            from_env[loc] = variable
    return merged, from_env


def _settings_problems(exc: ValidationError, source: SourceMap, from_env: Mapping[Loc, str]) -> list[str]:
    """Like ``validation_problems``, naming the environment variable for values that came from one."""
    problems: list[tuple[int, str]] = []
    for loc, message in located_errors(exc, Settings):
        variable = next((v for key, v in from_env.items() if loc[: len(key)] == key), None)
        if variable is None:
            problems.append((source.locate(loc)[0], problem_at(source, loc, message)))
        else:
            problems.append((0, f"environment variable {variable}: {message}"))
    return [text for _, text in sorted(problems, key=lambda pair: pair[0])]
