"""The YAML reader that config and playbooks both go through, and the ``path:line: field: message``
errors it makes possible.

The reader keeps the line of every key and list item (``SourceMap``), so that every mistake, in
config or in a playbook, is reported as ``path:line: field.path: message`` and never as a traceback:
``problem_at`` words one, ``located_errors`` turns pydantic's errors into located ones, and
``problems_in_file_order`` lists them as people read the file.

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
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.domain.located import FieldErrors, Loc, SourceMap, dotted
from bot.errors import ConfigProblems

_MAX_FILE_BYTES = 128 * 1024
_MAX_DEPTH = 32
"""Nesting levels (mappings and lists) a file may have; playbooks need about 8."""
_MAX_VALUES = 5_000
"""Values (keys, scalars, collections) a file may hold, aliases expanded; playbooks hold a few hundred."""


# ---------------------------------------------------------------------------------------------------
# Errors with file, line and field


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


def problems_in_file_order(source: SourceMap, found: Iterable[tuple[Loc, str]]) -> list[str]:
    """Located mistakes (pydantic's via ``located_errors``, or a check's own) as ``path:line: field:
    message`` lines, in the order they are written in the file."""
    ordered = sorted(found, key=lambda pair: source.locate(pair[0])[0])
    return [problem_at(source, loc, message) for loc, message in ordered]


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
