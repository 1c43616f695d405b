"""Label and field selectors, parsed from query strings and from ``spec.selector`` objects.

Lists, watches and the rollout controller all filter objects this way; the grammar follows
``k8s.io/apimachinery/pkg/labels`` (``a=b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.sandbox.kubernetes.vocabulary import JsonDict, bad_request


@dataclass(frozen=True)
class Requirement:
    """One term of a selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


Selector = tuple[Requirement, ...]

_TERM = re.compile(r"^\s*(?P<key>[^\s=!(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),]*)\s*$")
_SET_TERM = re.compile(r"^\s*(?P<key>[^\s=!(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s=!(),]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> Selector:
    if not text:
        return ()
    reqs: list[Requirement] = []
    for term in _split_terms(text):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            reqs.append(Requirement(m["key"], m["op"], values))
        elif m := _TERM.match(term):
            reqs.append(Requirement(m["key"], "=" if m["op"] in ("=", "==") else "!=", (m["value"],)))
        elif m := _EXISTS.match(term):
            reqs.append(Requirement(m["key"], "!exists" if m["neg"] else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {term.strip()!r}: invalid label selector")
    return tuple(reqs)


def selector_from_spec(spec: Any) -> Selector:
    """A ``metav1.LabelSelector`` object (``matchLabels`` + ``matchExpressions``) as requirements."""
    if not isinstance(spec, dict):
        return ()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in sorted((spec.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in spec.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is not None:
            reqs.append(
                Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or ()))
            )
    return tuple(reqs)


def format_selector(spec: Any) -> str:
    """The string form kubectl prints and ``Scale.status.selector`` carries."""
    parts = []
    for req in selector_from_spec(spec):
        if req.op in ("=", "!="):
            parts.append(f"{req.key}{req.op}{req.values[0]}")
        elif req.op in ("in", "notin"):
            parts.append(f"{req.key} {req.op} ({','.join(sorted(req.values))})")
        else:
            parts.append(req.key if req.op == "exists" else f"!{req.key}")
    return ",".join(parts)


def labels_match(selector: Selector, obj: JsonDict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(req.matches(labels) for req in selector)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str


FieldSelector = tuple[FieldRequirement, ...]


def parse_field_selector(text: str | None) -> FieldSelector:
    if not text:
        return ()
    reqs = []
    for term in _split_terms(text):
        m = _TERM.match(term)
        if m is None:
            raise bad_request(f"invalid selector: {term.strip()!r}; can't understand {term.strip()!r}")
        reqs.append(FieldRequirement(tuple(m["key"].split(".")), m["op"] != "!=", m["value"]))
    return tuple(reqs)


def _field(obj: JsonDict, path: Sequence[str]) -> str:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fields_match(selector: FieldSelector, obj: JsonDict) -> bool:
    return all((_field(obj, req.path) == req.value) == req.equal for req in selector)
