"""The README's reference sections, rendered from the code they describe so that they cannot drift.

Each section sits in ``README.md`` between ``<!-- reference:NAME:start -->`` and
``<!-- reference:NAME:end -->`` and is rendered from one source of truth:

- ``playbook`` and ``config``: the JSON Schema of ``Playbook`` (what ``shipthread playbook schema``
  gives editors) and of ``Settings``, with each field's type, default, allowed values and the
  field's docstring;
- ``environment``: the config loader's own lists (``ENV_OVERRIDES``, ``SECRET_VARIABLES``);
- ``commands``: the slash-command grammar's ``USAGE`` (what ``/deploy help`` answers);
- ``cli``: the ``shipthread`` argument parser;
- ``metrics``: the instruments of ``bot.metrics.Metrics``.

``python -m bot.reference`` rewrites the sections in place; ``--check`` only compares and exits 1
on drift, as ``tests/test_readme.py`` does. The rest of the README is prose and left alone.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import sys
import textwrap
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter

from bot import cli, config, settings
from bot.domain import commands, guard_spec, locks, playbook, rollout_spec
from bot.metrics import Metrics

UPDATE_COMMAND: Final = "python -m bot.reference"
"""What to run when the README's reference is out of date (the test's message names it)."""

_SECRET_NOTES: Final[Mapping[str, str]] = {
    "SLACK_BOT_TOKEN": "Bot User OAuth Token (`xoxb-…`, *OAuth & Permissions*); always needed",
    "SLACK_SIGNING_SECRET": "Signing Secret (*Basic Information → App Credentials*); HTTP mode",
    "SLACK_APP_TOKEN": "App-Level Token with `connections:write` (`xapp-…`); `serve --socket-mode` only",
    "JENKINS_USER": "Jenkins user the builds are triggered as",
    "JENKINS_TOKEN": "that user's Jenkins API token",
}
"""What each secret is and where to find it: the models say nothing about secrets on purpose."""

_SKIPPED_SETTINGS: Final = frozenset({"secrets"})
"""Settings fields that are not config keys (secrets come from the environment only)."""

_MODEL_MODULES: Final[tuple[ModuleType, ...]] = (settings, playbook, guard_spec, rollout_spec, locks)
"""Where the models whose attribute docstrings describe the fields live."""


# ---------------------------------------------------------------------------------------------------
# Sections in the README


_MARKER = re.compile(
    r"(?P<start><!-- reference:(?P<name>[a-z]+):start -->\n)(?P<body>.*?)"
    r"(?P<end><!-- reference:(?P=name):end -->)",
    re.DOTALL,
)


def sections() -> dict[str, Callable[[], str]]:
    """Every section's renderer, by the name its markers use."""
    return {
        "commands": render_commands,
        "cli": render_cli,
        "playbook": lambda: render_schema(playbook.Playbook.model_json_schema()),
        "config": lambda: render_schema(config.Settings.model_json_schema(), skip=_SKIPPED_SETTINGS),
        "environment": render_environment,
        "metrics": render_metrics,
    }


class MissingSection(LookupError):
    """The README lacks the markers of a section."""


def rewrite(text: str) -> str:
    """``text`` with every reference section rendered afresh; ``MissingSection`` if one has no markers."""
    renderers = sections()
    found = {m.group("name") for m in _MARKER.finditer(text)}
    missing = sorted(set(renderers) - found)
    if missing:
        raise MissingSection(
            "README.md has no markers for "
            + ", ".join(missing)
            + ": add "
            + " ".join(f"<!-- reference:{n}:start --> <!-- reference:{n}:end -->" for n in missing)
        )

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in renderers:
            return match.group(0)
        return match.group("start") + renderers[name]().rstrip("\n") + "\n" + match.group("end")

    return _MARKER.sub(fill, text)


# ---------------------------------------------------------------------------------------------------
# Slash commands and the command line


def render_commands() -> str:
    """What ``/deploy help`` answers, word for word."""
    return f"```\n{commands.USAGE}\n```\n"


def render_cli() -> str:
    """One entry per ``shipthread`` command: its synopsis, what it does, and its options."""
    lines: list[str] = []
    for words, parser, summary in _commands(cli._build_parser(), ()):
        synopsis = " ".join(["shipthread", *words, *(_synopsis(a) for a in _arguments(parser))])
        lines.append(f"- `{synopsis}`: {summary}")
        for action in _arguments(parser):
            if action.help:
                lines.append(f"  - `{_synopsis(action, bare=True)}`: {_cell(action.help)}")
    return "\n".join(lines) + "\n"


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...], summary: str = ""
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every command a person can run: a parser with arguments of its own, or without subcommands."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if words and (_arguments(parser) or not subcommands):
        yield words, parser, summary or (parser.description or "")
    for action in subcommands:
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, child in action.choices.items():
            yield from _commands(child, (*words, name), helps.get(name, ""))


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction | argparse._VersionAction)
    ]


def _synopsis(action: argparse.Action, *, bare: bool = False) -> str:
    """``[--port PORT]``, ``[--upgrade]``, ``[paths ...]`` (``bare``: without the brackets of options)."""
    if not action.option_strings:
        name = str(action.metavar or action.dest)
        return f"[{name} ...]" if action.nargs in ("*", "?") else name
    flag = max(action.option_strings, key=len)
    shown = flag if action.nargs == 0 else f"{flag} {action.metavar or action.dest.upper()}"
    return shown if bare or action.required else f"[{shown}]"


# ---------------------------------------------------------------------------------------------------
# Playbook and config tables, from their JSON Schema


@dataclass(frozen=True, slots=True)
class _Kind:
    """What a schema node accepts, in words, and where the fields of a nested model go."""

    text: str
    allowed: str = ""
    model: str | None = None
    """The ``$defs`` name of the model whose fields nest below this one."""
    suffix: str = ""
    """Path from this field to that model's fields: ``[]`` for a list, ``.<name>`` for a mapping."""
    enum: str | None = None
    """The ``$defs`` name of the enum whose values the field takes."""


@dataclass(frozen=True, slots=True)
class Row:
    """One field of a reference table."""

    path: str
    type: str
    default: str
    allowed: str
    description: str


def render_schema(schema: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> str:
    """A Markdown table of every field of ``schema``, nested models flattened into dotted paths."""
    rows = _Schema(schema, skip).rows()
    header = "| Field | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n"
    return header + "".join(
        f"| `{r.path}` | {r.type} | {r.default} | {r.allowed} | {r.description} |\n" for r in rows
    )


class _Schema:
    """Walks one JSON Schema, expanding each shared model once, where it is named most simply."""

    def __init__(self, schema: Mapping[str, Any], skip: frozenset[str]) -> None:
        self.root = schema
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.skip = skip
        self.docs = _attribute_docs()
        self.homes = self._homes()

    def _fields(self, model: str | None) -> Mapping[str, Any]:
        node = self.root if model is None else self.defs[model]
        fields: Mapping[str, Any] = node.get("properties", {})
        return {k: v for k, v in fields.items() if model is not None or k not in self.skip}

    def _homes(self) -> dict[str, str]:
        """Each model's shortest path (breadth first: ``guards.<guard>`` before ``environments.…``)."""
        homes: dict[str, str] = {}
        queue: deque[tuple[str | None, str]] = deque([(None, "")])
        while queue:
            model, prefix = queue.popleft()
            for name, node in self._fields(model).items():
                kind = self.kind(node, name)
                if kind.model is not None and kind.model not in homes:
                    homes[kind.model] = prefix + name + kind.suffix
                    queue.append((kind.model, homes[kind.model] + "."))
        return homes

    def rows(self, model: str | None = None, prefix: str = "") -> list[Row]:
        node = self.root if model is None else self.defs[model]
        required = set(node.get("required", ()))
        out: list[Row] = []
        for name, field in self._fields(model).items():
            kind = self.kind(field, name)
            path = prefix + name
            description = _text(field.get("description") or self._docstring(model, name) or self._about(kind))
            nested = kind.model is not None and self.homes.get(kind.model) == path + kind.suffix
            if kind.model is not None and not nested:
                description = f"{description} Fields as under `{self.homes[kind.model]}`.".strip()
            default = "required" if name in required else self._default(field, kind)
            out.append(Row(path, kind.text, default, kind.allowed, description))
            if nested and kind.model is not None:
                out += self.rows(kind.model, path + kind.suffix + ".")
        return out

    def _about(self, kind: _Kind) -> str:
        """A field without a docstring of its own is described by its model's or enum's docstring."""
        target = kind.model or kind.enum
        about = str(self.defs[target].get("description", "")) if target else ""
        # Only its first clause: the rest of a class docstring is often for the code's readers.
        first = re.split(r"(?<=\.)\s|;\s|\n\n", about.strip(), maxsplit=1)[0]
        return first.rstrip(".") + "." if first else ""

    def description(self, path: str) -> str:
        """The description of the section at ``path`` (``jenkins``), for rows that need more words."""
        for row in self.rows():
            if row.path == path:
                return row.description
        return ""

    def _docstring(self, model: str | None, field: str) -> str:
        title = self.root.get("title", "") if model is None else model
        return self.docs.get(title, {}).get(field, "")

    def kind(self, node: Mapping[str, Any], name: str) -> _Kind:
        """The words for ``node``, a property called ``name`` (which names a mapping's keys)."""
        if "$ref" in node:
            target = node["$ref"].rsplit("/", 1)[-1]
            resolved = self.defs[target]
            if "enum" in resolved:
                return _Kind("string", _choices(resolved["enum"]), enum=target)
            return _Kind("mapping", model=target)
        options = [o for o in node.get("anyOf", node.get("oneOf", ())) if o.get("type") != "null"]
        if options:
            if _is_duration(options):
                return _Kind("duration", _text(options[1].get("description", "")))
            if len(options) == 1:
                return self.kind(options[0], name)
            kinds = [self.kind(o, name) for o in options]
            model = next((k for k in kinds if k.model), None)
            allowed = "; ".join(k.allowed for k in kinds if k.allowed)
            text = " or ".join(dict.fromkeys(k.text for k in kinds))
            enum = next((k.enum for k in kinds if k.enum), None)
            return _Kind(text, allowed, model.model if model else None, model.suffix if model else "", enum)
        kind = node.get("type")
        if kind == "array":
            item = self.kind(node.get("items", {}), name)
            allowed = _join(_count(node, "minItems", "maxItems", "items"), item.allowed)
            return _Kind(f"list of {item.text}", allowed, item.model, "[]" + item.suffix, item.enum)
        if kind == "object" and isinstance(node.get("additionalProperties"), dict):
            key = f"<{name.removesuffix('s')}>"
            value = self.kind(node["additionalProperties"], name)
            allowed = _join(_count(node, "minProperties", "maxProperties", "entries"), value.allowed)
            shown = f"map of `{key}` to {value.text}"
            return _Kind(shown, allowed, value.model, f".{key}{value.suffix}", value.enum)
        words = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
        text = words.get(str(kind), str(kind or "any"))
        if "enum" in node:
            return _Kind(text, _choices(node["enum"]))
        return _Kind(text, _join(_bounds(node), _count(node, "minLength", "maxLength", "characters")))

    def _default(self, node: Mapping[str, Any], kind: _Kind) -> str:
        if "default" not in node:
            return ""
        value = node["default"]
        if value is None:
            return "none"
        if kind.text == "duration":
            return f"`{_duration(TypeAdapter(timedelta).validate_python(value))}`"
        if isinstance(value, dict) and kind.model is not None:
            return ""  # a nested model's defaults are its own fields' defaults
        if value in ([], {}):
            return "empty"
        if value == "":
            return '`""`'
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        return f"`{value}`"


def _is_duration(options: Sequence[Mapping[str, Any]]) -> bool:
    # How ``Duration``/``LongDuration`` describe themselves: seconds, or text such as ``1h30m``.
    return (
        len(options) == 2
        and options[0].get("type") == "number"
        and options[0].get("description") == "seconds"
        and options[1].get("type") == "string"
        and "pattern" in options[1]
    )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return "".join(parts) or "0s"


def _choices(values: Sequence[Any]) -> str:
    return ", ".join(f"`{v}`" for v in values)


_BOUNDS: Final = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))


def _bounds(node: Mapping[str, Any]) -> str:
    parts = [f"{symbol} {node[key]}" for key, symbol in _BOUNDS if key in node]
    return ", ".join(parts)


def _count(node: Mapping[str, Any], least: str, most: str, unit: str) -> str:
    parts = []
    if node.get(least) == 1:
        parts.append("not empty")
    elif node.get(least, 0) > 1:
        parts.append(f"at least {node[least]} {unit}")
    if most in node:
        parts.append(f"at most {node[most]} {unit}")
    return ", ".join(parts)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _text(doc: str) -> str:
    """A docstring as one table cell: reST ``code`` as Markdown, one line, pipes escaped."""
    flat = " ".join(doc.split())
    return _cell(flat.replace("``", "`"))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _attribute_docs() -> dict[str, dict[str, str]]:
    """Model name → field → the docstring under the field, read from the models' source.

    The playbook's models hand these to pydantic (``use_attribute_docstrings``), the settings' do
    not; reading the source gives both tables the same descriptions.
    """
    docs: dict[str, dict[str, str]] = {}
    for module in _MODEL_MODULES:
        for value in vars(module).values():
            ours = isinstance(value, type) and value.__module__ == module.__name__
            if ours and issubclass(value, BaseModel):
                title = str(value.model_config.get("title") or value.__name__)
                docs[title] = _docstrings_of(value)
    return docs


def _docstrings_of(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


# ---------------------------------------------------------------------------------------------------
# Environment variables and metrics


def render_environment() -> str:
    """Every variable the bot reads: the config file, endpoint overrides and secrets."""
    schema = _Schema(config.Settings.model_json_schema(), _SKIPPED_SETTINGS)
    settings = {r.path: r for r in schema.rows()}
    rows = [
        (
            "SHIPTHREAD_CONFIG",
            "config file",
            f"`{config.DEFAULT_CONFIG}` if it exists, else built-in defaults",
            "The config file to read; a file named here must exist.",
        )
    ]
    for variable, loc in config.ENV_OVERRIDES.items():
        key = ".".join(str(part) for part in loc)
        row = settings[key]
        # The field's docstring names its variable ("env `JENKINS_URL`"): here that goes without saying.
        said = re.sub(rf"[;,]?\s*env `{variable}`\.?", "", row.description).strip()
        said = said or schema.description(".".join(str(part) for part in loc[:-1]))
        said = said if not said or said.endswith(".") else said + "."
        rows.append((variable, f"overrides `{key}`", row.default, said))
    unknown = [name for name in config.SECRET_VARIABLES if name not in _SECRET_NOTES]
    if unknown:
        raise LookupError(f"describe the secret(s) {', '.join(unknown)} in bot/reference.py's _SECRET_NOTES")
    rows += [(name, "secret", "", _SECRET_NOTES[name] + ".") for name in config.SECRET_VARIABLES]
    header = "| Variable | What it is | Default | Description |\n|---|---|---|---|\n"
    return header + "".join(f"| `{v}` | {what} | {default} | {text} |\n" for v, what, default, text in rows)


_EXPOSED: Final[Mapping[str, tuple[str, ...]]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def render_metrics() -> str:
    """The series ``GET /metrics`` serves, as Prometheus names them, with labels and help."""
    lines = ["| Metric | Type | Labels | Meaning |", "|---|---|---|---|"]
    for name, kind, labels, help_text in metric_families():
        exposed = ", ".join(f"`{name}{suffix}`" for suffix in _EXPOSED.get(kind, ("",)))
        shown = ", ".join(f"`{label}`" for label in labels)
        lines.append(f"| {exposed} | {kind} | {shown} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def metric_families() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(name, type, label names, help) of every instrument of ``Metrics``, in declaration order."""
    families = []
    for instrument in vars(Metrics()).values():
        describe = getattr(instrument, "describe", None)
        if describe is None:
            continue
        for family in describe():
            # Label names are not part of a family with no samples yet: the instrument keeps them.
            labels = tuple(getattr(instrument, "_labelnames", ()))
            families.append((family.name, family.type, labels, family.documentation))
    return families


# ---------------------------------------------------------------------------------------------------
# The command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=UPDATE_COMMAND, description="Render the README's reference sections."
    )
    parser.add_argument("readme", nargs="?", default="README.md", help="the README to update")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when out of date")
    args = parser.parse_args(argv)
    path = Path(args.readme)
    text = path.read_text(encoding="utf-8")
    try:
        fresh = rewrite(text)
    except MissingSection as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    if fresh == text:
        return 0
    if args.check:
        print(f"{path}: the reference is out of date: run `{UPDATE_COMMAND}` to update it", file=sys.stderr)
        return 1
    path.write_text(fresh, encoding="utf-8")
    print(f"{path}: reference updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
