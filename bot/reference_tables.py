"""The README reference's field tables: one JSON Schema walked into rows of path, type, default,
allowed values and description.

Apart from ``bot.reference`` (which finds the README's sections and renders each) because reading
a schema is a job of its own: pydantic's ``$defs`` and ``anyOf`` spelled out in words, shared
models expanded once where they are named most simply, descriptions taken from the models'
attribute docstrings (read from their source, since the settings models do not hand them to
pydantic).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter

from bot import settings
from bot.domain import guard_spec, locks, playbook, rollout_spec

_MODEL_MODULES: Final[tuple[ModuleType, ...]] = (settings, playbook, guard_spec, rollout_spec, locks)
"""Where the models whose attribute docstrings describe the fields live."""


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


class SchemaTable:
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
    return cell(flat.replace("``", "`"))


def cell(text: str) -> str:
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
