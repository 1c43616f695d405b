"""The OpenAPI v3 documents the emulator serves, one per group-version, built from the kinds' schemas.

kubectl reads ``/openapi/v3`` before ``apply -f`` and ``create -f``: it looks for a PATCH operation
carrying ``x-kubernetes-group-version-kind`` and a ``fieldValidation`` parameter (so it can leave
validation to the server) and it computes ``apply`` patches from the schemas'
``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``. The schemas themselves are
``openapi_schemas``'; this module adds the paths and operations of each kind and serializes a document
once per group-version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from bot.sandbox.kubernetes.openapi_schemas import AUTOSCALING, META, component_of, components, ref
from bot.sandbox.kubernetes.vocabulary import GROUP_VERSIONS, JsonDict, ResourceType, resources_of

PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_LIST_PARAMS = (
    "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
    "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch",
)  # fmt: skip


def _query(*names: str) -> list[JsonDict]:
    kinds = {"limit": "integer", "timeoutSeconds": "integer", "watch": "boolean",
    "allowWatchBookmarks": "boolean",
             "sendInitialEvents": "boolean", "force": "boolean", "gracePeriodSeconds": "integer"}  # fmt: skip
    return [
        {"name": n, "in": "query", "schema": {"type": kinds.get(n, "string"), "uniqueItems": True}}
        for n in names
    ]


def _path_params(*names: str) -> list[JsonDict]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}
        for n in names
    ]


def _operation(
    action: str,
    gvk: tuple[str, str, str],
    response: str,
    *,
    body: str | None = None,
    params: tuple[str, ...] = (),
) -> JsonDict:
    op: JsonDict = {
        "parameters": _query(*params),
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": ref(response)}},
            },
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": gvk[0], "kind": gvk[2], "version": gvk[1]},
    }
    if body is not None:
        types = PATCH_TYPES if action == "patch" else ("*/*",)
        op["requestBody"] = {"content": {t: {"schema": ref(body)} for t in types}, "required": True}
    return op


def _paths(rt: ResourceType) -> Iterator[tuple[str, JsonDict]]:
    prefix = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group_version}"
    gvk = (rt.group, rt.version, rt.kind)
    kind, kind_list = component_of(rt), f"{component_of(rt)}List"
    status, delete_options, patch = f"{META}.Status", f"{META}.DeleteOptions", f"{META}.Patch"
    collection = (
        f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    )
    scope_params = ("namespace",) if rt.namespaced else ()
    yield (
        collection,
        {
            "get": _operation("list", gvk, kind_list, params=_LIST_PARAMS),
            "post": _operation("post", gvk, kind, body=kind, params=_WRITE_PARAMS),
            "delete": _operation("deletecollection", gvk, status, body=delete_options, params=_LIST_PARAMS),
            "parameters": _path_params(*scope_params),
        },
    )
    yield (
        f"{collection}/{{name}}",
        {
            "get": _operation("get", gvk, kind),
            "put": _operation("put", gvk, kind, body=kind, params=_WRITE_PARAMS),
            "patch": _operation("patch", gvk, kind, body=patch, params=(*_WRITE_PARAMS, "force")),
            "delete": _operation(
                "delete", gvk, status, body=delete_options, params=("dryRun", "gracePeriodSeconds")
            ),
            "parameters": _path_params(*scope_params, "name"),
        },
    )
    for sub in rt.subresources:
        body = f"{AUTOSCALING}.Scale" if sub.name == "scale" else kind
        sub_gvk = (sub.group, sub.version, sub.kind) if sub.name == "scale" else gvk
        yield (
            f"{collection}/{{name}}/{sub.name}",
            {
                "get": _operation("get", sub_gvk, body),
                "put": _operation("put", sub_gvk, body, body=body, params=_WRITE_PARAMS),
                "patch": _operation("patch", sub_gvk, body, body=patch, params=(*_WRITE_PARAMS, "force")),
                "parameters": _path_params(*scope_params, "name"),
            },
        )
    if rt.namespaced:
        yield f"{prefix}/{rt.plural}", {"get": _operation("list", gvk, kind_list, params=_LIST_PARAMS)}


def _reachable(roots: list[str], schemas: Mapping[str, JsonDict]) -> dict[str, JsonDict]:
    seen: dict[str, JsonDict] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen[name] = schemas[name]
        todo.extend(_refs(schemas[name]))
    return dict(sorted(seen.items()))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.removeprefix("#/components/schemas/")
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@cache
def document(group_version: str) -> bytes:
    """The OpenAPI v3 document of one group-version, serialized once."""
    paths = dict(p for rt in resources_of(group_version) for p in _paths(rt))
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": _reachable(list(_refs(paths)), components())},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def index() -> JsonDict:
    """``GET /openapi/v3``: where each group-version's document lives (with a content hash)."""
    paths = {}
    for gv in GROUP_VERSIONS:
        path = f"api/{gv}" if "/" not in gv else f"apis/{gv}"
        digest = hashlib.sha512(document(gv)).hexdigest()[:128].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def document_for_path(path: str) -> bytes | None:
    """The document served at ``/openapi/v3/<path>``, e.g. ``apis/apps/v1``."""
    for gv in GROUP_VERSIONS:
        if path == (f"api/{gv}" if "/" not in gv else f"apis/{gv}"):
            return document(gv)
    return None
