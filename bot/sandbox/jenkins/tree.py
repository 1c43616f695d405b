"""Jenkins' ``?tree=`` filter for ``api/json`` answers.

Why it exists: python-jenkins and the bot ask for trimmed answers with ``tree=``, and Jenkins'
filter has rules a client can depend on (``_class`` always kept, ``{m,n}`` ranges, a bean named
without sub-fields comes back as its class only). It is a pure function of the JSON, so it stands alone.
"""

from __future__ import annotations

import re
from typing import TypeAlias

from bot.sandbox.jenkins.config import Json

TreeSpec: TypeAlias = dict[str, tuple["TreeSpec | None", "slice | None"]]


def parse_tree(spec: str) -> TreeSpec:
    """Parse Jenkins' ``tree`` query, e.g. ``jobs[name,url,jobs[name]]{0,10}``."""
    pos = 0

    def fields() -> TreeSpec:
        nonlocal pos
        out: TreeSpec = {}
        while pos < len(spec):
            match = re.compile(r"\s*([A-Za-z_$][\w$]*)\s*").match(spec, pos)
            if match is None:
                raise ValueError(f"bad tree at {pos}: {spec!r}")
            name = match.group(1)
            pos = match.end()
            sub: TreeSpec | None = None
            rng: slice | None = None
            if pos < len(spec) and spec[pos] == "[":
                pos += 1
                sub = fields()
                if pos >= len(spec) or spec[pos] != "]":
                    raise ValueError(f"unclosed [ in tree: {spec!r}")
                pos += 1
            if pos < len(spec) and spec[pos] == "{":
                close = spec.find("}", pos)
                if close < 0:
                    raise ValueError(f"unclosed {{ in tree: {spec!r}")
                rng = _range(spec[pos + 1 : close])
                pos = close + 1
            out[name] = (sub, rng)
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            break
        return out

    tree = fields()
    if pos != len(spec):
        raise ValueError(f"unexpected {spec[pos]!r} in tree: {spec!r}")
    return tree


def _range(text: str) -> slice:
    if "," not in text:
        n = int(text)
        return slice(n, n + 1)
    low, high = text.split(",", 1)
    return slice(int(low) if low.strip() else None, int(high) if high.strip() else None)


def apply_tree(value: Json, tree: TreeSpec) -> Json:
    if isinstance(value, list):
        return [apply_tree(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Json] = {}
    if "_class" in value:
        out["_class"] = value["_class"]
    for name, (sub, rng) in tree.items():
        if name not in value:
            continue
        v = value[name]
        if rng is not None and isinstance(v, list):
            v = v[rng]
        out[name] = apply_tree(v, sub) if sub is not None else _leaf(v)
    return out


def _leaf(value: Json) -> Json:
    # A bean named without sub-fields comes back as its class only (python-jenkins counts on it).
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    if isinstance(value, list):
        return [_leaf(v) for v in value]
    return value
