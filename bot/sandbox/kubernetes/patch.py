"""The three patch formats of the Kubernetes API: JSON patch, JSON merge patch, strategic merge patch.

Strategic merge patch is what kubectl and the kubernetes client send by default: lists such as
``containers`` are merged element by element on a key (``name``) instead of being replaced, and the
``$patch``, ``$retainKeys``, ``$setElementOrder/…`` and ``$deleteFromPrimitiveList/…`` directives steer
it. Which lists merge on which key comes from the OpenAPI schema (``x-kubernetes-patch-strategy``,
``x-kubernetes-patch-merge-key``), the same source kubectl reads, through the small ``PatchMeta``
protocol below.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class PatchError(ValueError):
    """The patch cannot be applied to this document."""


@dataclass(frozen=True)
class FieldMeta:
    """How one field merges: its strategy, its merge key, and the schema of its value (or items)."""

    meta: PatchMeta
    strategy: frozenset[str] = frozenset()
    merge_key: str | None = None


class PatchMeta(Protocol):
    """The patch-relevant part of a schema: what a field of this object is made of."""

    def field(self, name: str) -> FieldMeta: ...


class NoPatchMeta:
    """A schema that knows nothing: maps merge, lists are replaced (plain merge-patch behaviour)."""

    def field(self, name: str) -> FieldMeta:
        return FieldMeta(self)


NO_META = NoPatchMeta()

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_ORDER_PREFIX = "$setElementOrder/"
_DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"


def _is_directive_key(key: str) -> bool:
    return key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith((_ORDER_PREFIX, _DELETE_PRIMITIVE_PREFIX))


def _strip(value: Any) -> Any:
    """A patch value that becomes part of the object: no directives, no nulls."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not _is_directive_key(k) and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get(_DIRECTIVE) == "delete")]
    return value


def strategic_merge(original: dict[str, Any], patch: Any, meta: PatchMeta) -> dict[str, Any]:
    """Apply a strategic merge patch; ``original`` is left untouched."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(original), patch, meta)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], meta: PatchMeta) -> dict[str, Any]:
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return dict(_strip(patch))
    if directive == "delete":
        return {}
    if directive is not None and directive != "merge":
        raise PatchError(f"unknown patch type: {directive!r}")
    retain = patch.get(_RETAIN_KEYS)
    if isinstance(retain, list):
        original = {k: v for k, v in original.items() if k in retain}
    orders: dict[str, Any] = {}
    for key, value in patch.items():
        if key.startswith(_ORDER_PREFIX):
            orders[key.removeprefix(_ORDER_PREFIX)] = value
        elif key.startswith(_DELETE_PRIMITIVE_PREFIX):
            field = key.removeprefix(_DELETE_PRIMITIVE_PREFIX)
            if isinstance(original.get(field), list) and isinstance(value, list):
                original[field] = [item for item in original[field] if item not in value]
    for key, value in patch.items():
        if _is_directive_key(key):
            continue
        if value is None:
            original.pop(key, None)
            continue
        field_meta = meta.field(key)
        current = original.get(key)
        if isinstance(value, dict):
            sub_directive = value.get(_DIRECTIVE)
            if sub_directive == "delete":
                original.pop(key, None)
            elif sub_directive == "replace":
                original[key] = _strip(value)
            else:
                original[key] = _merge_map(
                    current if isinstance(current, dict) else {}, value, field_meta.meta
                )
        elif isinstance(value, list) and "merge" in field_meta.strategy:
            original[key] = _merge_list(current if isinstance(current, list) else [], value, field_meta)
        else:
            original[key] = _strip(value)
    for key, order in orders.items():
        if isinstance(original.get(key), list) and isinstance(order, list):
            original[key] = _reorder(original[key], order, meta.field(key).merge_key)
    return original


def _merge_list(original: list[Any], patch: list[Any], field: FieldMeta) -> list[Any]:
    if any(isinstance(item, dict) and item.get(_DIRECTIVE) == "replace" for item in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and i.get(_DIRECTIVE) == "replace")]
    key = field.merge_key
    result = list(original)
    if key is None:
        result.extend(item for item in patch if item not in original and not isinstance(item, dict))
        return result
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"expected an object with merge key {key!r} in a merged list, got {item!r}")
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            result = [o for o in result if not (isinstance(o, dict) and o.get(key) == item[key])]
        elif index is None:
            result.append(_strip(item))
        else:
            result[index] = _merge_map(result[index], item, field.meta)
    return result


def _reorder(items: list[Any], order: Sequence[Any], key: str | None) -> list[Any]:
    """``$setElementOrder``: the listed elements in the given order, the others after them."""

    def ident(item: Any) -> Any:
        return item.get(key) if key is not None and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    ranked = [
        (wanted.index(ident(i)) if ident(i) in wanted else len(wanted), n, i) for n, i in enumerate(items)
    ]
    return [item for _, _, item in sorted(ranked, key=lambda r: (r[0], r[1]))]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]] if path else []


def _parent(doc: Any, parts: list[str], op: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return node


def _get(doc: Any, parts: list[str], op: str) -> Any:
    if not parts:
        return doc
    parent, last = _parent(doc, parts, op), parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")


def _add(doc: Any, parts: list[str], value: Any, op: str) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts, op), parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"{op} operation does not apply: index out of range: /{'/'.join(parts)}")
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str], op: str) -> Any:
    _get(doc, parts, op)
    parent, last = _parent(doc, parts, op), parts[-1]
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[int(last)]
    return doc


def _replace(doc: Any, parts: list[str], value: Any, op: str) -> Any:
    _get(doc, parts, op)
    if not parts:
        return value
    parent, last = _parent(doc, parts, op), parts[-1]
    parent[int(last) if isinstance(parent, list) else last] = value
    return doc


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch; ``document`` is left untouched."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations")
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError(f"invalid JSON patch operation: {operation!r}")
        op = operation.get("op")
        parts = _pointer(operation.get("path"))
        if op == "add":
            doc = _add(doc, parts, copy.deepcopy(operation.get("value")), op)
        elif op == "remove":
            doc = _remove(doc, parts, op)
        elif op == "replace":
            doc = _replace(doc, parts, copy.deepcopy(operation.get("value")), op)
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            value = copy.deepcopy(_get(doc, source, op))
            if op == "move":
                doc = _remove(doc, source, op)
            doc = _add(doc, parts, value, op)
        elif op == "test":
            if _get(doc, parts, op) != operation.get("value"):
                raise PatchError(f"testing value /{'/'.join(parts)} failed: test failed")
        else:
            raise PatchError(f"unexpected operation kind: {op!r}")
    return doc
