"""The schemas of the emulated kinds, built from a compact table of their fields (a data file).

Why a module of its own: two readers need the same schemas. The OpenAPI documents kubectl downloads
(``openapi``) reference them, and the server reads them to apply strategic merge patches
(``patch_meta``) and to warn about unknown fields, so client and server agree on which lists merge on
which key. The field table itself is data: ``openapi_fields.json`` (shipped as package data, read once),
plus the kinds of ``config_kinds``. It follows the Kubernetes 1.3x API; rarely used nested types are
plain objects, everything a Deployment, ReplicaSet, Service, Pod or Namespace manifest commonly holds is
typed.

Field types, a small language: "str", "int32", "int64", "bool", "time", "ios" (int or string), "qty"
(quantity), "obj" (free-form object), "map" (string → string), "map:qty"; a type name is a reference;
"[T]" is an atomic list, "[T]@key" a list merged on key, "[T]@key+retain" also retains keys, "[T]set" a
merged list of scalars. A trailing "!" marks a required field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from bot.sandbox.kubernetes import config_kinds
from bot.sandbox.kubernetes.patch import NO_META, FieldMeta, PatchMeta
from bot.sandbox.kubernetes.vocabulary import RBAC, JsonDict, ResourceType

CORE = "io.k8s.api.core.v1"
APPS = "io.k8s.api.apps.v1"
AUTOSCALING = "io.k8s.api.autoscaling.v1"
RBAC_API = "io.k8s.api.rbac.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_FIELDS_FILE = "openapi_fields.json"

FieldTable = dict[str, dict[str, dict[str, str]]]
"""package → type name → field → its type in the small language."""


@cache
def _types() -> FieldTable:
    """The whole field table: the data file, then what is derived from it or kept elsewhere."""
    text = resources.files(__package__).joinpath(_FIELDS_FILE).read_text(encoding="utf-8")
    types: FieldTable = json.loads(text)
    core = types[CORE]
    # EphemeralContainer is a Container that also names the container it debugs.
    core["EphemeralContainer"] = {**core["Container"], "targetContainerName": "str"}
    # ServiceAccount, ConfigMap, Secret, Role, RoleBinding: their own module (config_kinds).
    core.update(config_kinds.CORE_TYPES)
    types[RBAC_API] = dict(config_kinds.RBAC_TYPES)
    return types


# Kinds (with their lists) that carry x-kubernetes-group-version-kind.
_KINDS: dict[str, tuple[str, str, str]] = {
    f"{APPS}.Deployment": ("apps", "v1", "Deployment"),
    f"{APPS}.ReplicaSet": ("apps", "v1", "ReplicaSet"),
    f"{AUTOSCALING}.Scale": ("autoscaling", "v1", "Scale"),
    f"{CORE}.Namespace": ("", "v1", "Namespace"),
    f"{CORE}.Pod": ("", "v1", "Pod"),
    f"{CORE}.Service": ("", "v1", "Service"),
    f"{CORE}.Event": ("", "v1", "Event"),
    f"{META}.Status": ("", "v1", "Status"),
}
_KINDS |= {
    f"{RBAC_API if group == RBAC else CORE}.{kind}": (group, version, kind)
    for kind, (group, version) in config_kinds.KINDS.items()
}
_LISTED = ("Deployment", "ReplicaSet", "Namespace", "Pod", "Service", "Event", *config_kinds.KINDS)

_SCALARS: dict[str, JsonDict] = {
    "str": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "obj": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "map": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
}
_NAMED_SCALARS = {
    "time": f"{META}.Time",
    "ios": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "qty": "io.k8s.apimachinery.pkg.api.resource.Quantity",
}


@cache
def _full_names() -> dict[str, str]:
    """Short type name → its definition name (short names are unique across packages)."""
    names: dict[str, str] = {}
    for package, types in _types().items():
        for short in types:
            assert short not in names, f"duplicate short type name {short}"
            names[short] = f"{package}.{short}"
    return names


def ref(name: str) -> JsonDict:
    return {"$ref": f"#/components/schemas/{name}"}


def _type(spec: str) -> JsonDict:
    """One field's schema from the little language above."""
    if spec in _SCALARS:
        return dict(_SCALARS[spec])
    if spec in _NAMED_SCALARS:
        return {"allOf": [ref(_NAMED_SCALARS[spec])]}
    if spec.startswith("map:"):
        return {"type": "object", "additionalProperties": _type(spec.removeprefix("map:"))}
    if spec.startswith("["):
        inner, _, rest = spec[1:].partition("]")
        schema: JsonDict = {"type": "array", "items": _type(inner)}
        if rest == "set":
            schema |= {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}
        elif rest.startswith("@"):
            key, _, retain = rest[1:].partition("+")
            schema |= {
                "x-kubernetes-list-map-keys": [key],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": key,
                "x-kubernetes-patch-strategy": "merge,retainKeys" if retain else "merge",
            }
        else:
            schema["x-kubernetes-list-type"] = "atomic"
        return schema
    name, _, retain = spec.partition("+")
    schema = {"allOf": [ref(_full_names()[name])], "default": {}}
    if retain:
        schema["x-kubernetes-patch-strategy"] = "retainKeys"
    return schema


def _object(fields: Mapping[str, str]) -> JsonDict:
    properties, required = {}, []
    for field, spec in fields.items():
        if spec.endswith("!"):
            required.append(field)
            spec = spec[:-1]
        properties[field] = _type(spec)
    schema: JsonDict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _gvk(group: str, version: str, kind: str) -> list[JsonDict]:
    return [{"group": group, "kind": kind, "version": version}]


@cache
def components() -> dict[str, JsonDict]:
    """Every schema the emulator knows, keyed by its Kubernetes definition name."""
    schemas: dict[str, JsonDict] = {}
    for package, types in _types().items():
        for short, fields in types.items():
            schemas[f"{package}.{short}"] = _object(fields)
    for name, (group, version, kind) in _KINDS.items():
        schemas[name]["x-kubernetes-group-version-kind"] = _gvk(group, version, kind)
        if kind in _LISTED:
            schemas[f"{name}List"] = {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "items": {"type": "array", "items": {"allOf": [ref(name)], "default": {}}},
                    "kind": {"type": "string"},
                    "metadata": {"allOf": [ref(f"{META}.ListMeta")], "default": {}},
                },
                "x-kubernetes-group-version-kind": _gvk(group, version, f"{kind}List"),
            }
    schemas[f"{META}.Time"] = {"type": "string", "format": "date-time"}
    schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": "string", "format": "int-or-string"}
    schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": "string"}
    schemas[f"{META}.Patch"] = {"type": "object", "description": "The body of a PATCH request."}
    schemas[f"{META}.ObjectMeta"]["properties"]["ownerReferences"]["x-kubernetes-list-map-keys"] = ["uid"]
    schemas[f"{META}.LabelSelector"]["x-kubernetes-map-type"] = "atomic"
    schemas[f"{CORE}.ServiceSpec"]["properties"]["ports"]["x-kubernetes-list-map-keys"] = [
        "port",
        "protocol",
    ]
    schemas[f"{CORE}.Container"]["properties"]["ports"]["x-kubernetes-list-map-keys"] = [
        "containerPort",
        "protocol",
    ]
    return schemas


def component_of(rt: ResourceType) -> str:
    package = {"apps/v1": APPS, "v1": CORE, f"{RBAC}/v1": RBAC_API}[rt.group_version]
    return f"{package}.{rt.kind}"


class SchemaPatchMeta:
    """``PatchMeta`` read from the OpenAPI components, as kubectl's ``PatchMetaFromOpenAPIV3`` does."""

    def __init__(self, schema: JsonDict | None):
        self._schema = _resolve(schema)

    def field(self, name: str) -> FieldMeta:
        if self._schema is None:
            return FieldMeta(NO_META)
        prop = (self._schema.get("properties") or {}).get(name)
        if prop is None:
            extra = self._schema.get("additionalProperties")
            return FieldMeta(SchemaPatchMeta(extra) if isinstance(extra, dict) else NO_META)
        strategy = frozenset(s for s in str(prop.get("x-kubernetes-patch-strategy", "")).split(",") if s)
        value = prop.get("items") if prop.get("type") == "array" else prop
        return FieldMeta(SchemaPatchMeta(value), strategy, prop.get("x-kubernetes-patch-merge-key"))


def _resolve(schema: JsonDict | None) -> JsonDict | None:
    while schema is not None:
        if schema.get("allOf"):
            schema = schema["allOf"][0]
        elif "$ref" in schema:
            schema = components().get(str(schema["$ref"]).removeprefix("#/components/schemas/"))
        else:
            return schema
    return None


def patch_meta(rt: ResourceType, subresource: str | None = None) -> PatchMeta:
    """The patch metadata of a kind's body (or of ``Scale`` for the scale subresource)."""
    name = f"{AUTOSCALING}.Scale" if subresource == "scale" else component_of(rt)
    return SchemaPatchMeta(components().get(name))


def unknown_fields(rt: ResourceType, obj: JsonDict) -> list[str]:
    """Paths of fields the schema does not declare, e.g. ``spec.template.spec.containers[0].imagee``.

    The emulator only warns about them (``Warning: unknown field …``) even when kubectl asks for
    strict validation: a field newer than this table must not make a valid manifest fail.
    """
    found: list[str] = []
    _walk(components().get(component_of(rt)), obj, "", found)
    return found


def _walk(schema: JsonDict | None, value: Any, path: str, found: list[str]) -> None:
    schema = _resolve(schema)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, list) and schema.get("type") == "array":
        for i, item in enumerate(value):
            _walk(schema.get("items"), item, f"{path}[{i}]", found)
    elif isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                _walk(properties[key], item, where, found)
            elif isinstance(extra, dict):
                _walk(extra, item, where, found)
            elif properties is not None and key not in ("apiVersion", "kind"):
                found.append(where)
