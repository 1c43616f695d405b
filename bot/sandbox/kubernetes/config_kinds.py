"""The kinds that stand beside a workload: ServiceAccount, ConfigMap, Secret, Role and RoleBinding.

Nothing in the emulator acts on them (no token controller, no authorizer): they are stored,
listed and watched like any other object. They exist so that a bot's own manifests
(``deploy/kubernetes``) can be checked with ``kubectl apply --dry-run=server -k`` as a real
API server would check them: kubectl finds them in discovery and OpenAPI, and the server
defaults and validates them with the real registry's rules and messages (a Secret's
``stringData`` folded into base64 ``data``, config keys, a Role rule without verbs, a
RoleBinding without a ``roleRef``, a ``roleRef`` changed after creation).

The field tables use ``openapi_schemas``' little language; ``openapi_schemas`` merges them into its own.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from bot.sandbox.kubernetes.vocabulary import (
    CONFIGMAPS,
    RBAC,
    ROLEBINDINGS,
    ROLES,
    SECRETS,
    SERVICEACCOUNTS,
    Cause,
    JsonDict,
    ResourceType,
)

CORE_TYPES: dict[str, dict[str, str]] = {
    "ServiceAccount": {
        "apiVersion": "str", "automountServiceAccountToken": "bool",
        "imagePullSecrets": "[LocalObjectReference]", "kind": "str", "metadata": "ObjectMeta",
        "secrets": "[ObjectReference]@name",
    },
    "ConfigMap": {
        "apiVersion": "str", "binaryData": "map", "data": "map", "immutable": "bool", "kind": "str",
        "metadata": "ObjectMeta",
    },
    "Secret": {
        "apiVersion": "str", "data": "map", "immutable": "bool", "kind": "str", "metadata": "ObjectMeta",
        "stringData": "map", "type": "str",
    },
}  # fmt: skip
"""``io.k8s.api.core.v1`` kinds (``LocalObjectReference`` and ``ObjectReference`` are the core table's)."""

RBAC_TYPES: dict[str, dict[str, str]] = {
    "Role": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "rules": "[PolicyRule]"},
    "PolicyRule": {
        "apiGroups": "[str]", "nonResourceURLs": "[str]", "resourceNames": "[str]", "resources": "[str]",
        "verbs": "[str]!",
    },
    "RoleBinding": {
        "apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "roleRef": "RoleRef!",
        "subjects": "[Subject]",
    },
    "RoleRef": {"apiGroup": "str!", "kind": "str!", "name": "str!"},
    "Subject": {"apiGroup": "str", "kind": "str!", "name": "str!", "namespace": "str"},
}  # fmt: skip
"""``io.k8s.api.rbac.v1`` kinds."""

KINDS: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("", "v1"),
    "ConfigMap": ("", "v1"),
    "Secret": ("", "v1"),
    "Role": (RBAC, "v1"),
    "RoleBinding": (RBAC, "v1"),
}
"""Kind → (group, version), for ``x-kubernetes-group-version-kind``; each also has a ``…List``."""

KINDS_SERVED: tuple[ResourceType, ...] = (SERVICEACCOUNTS, CONFIGMAPS, SECRETS, ROLES, ROLEBINDINGS)
"""The resource types whose defaults and validation live here."""

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONFIG_KEY_HELP = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_ROLE_REF_KINDS = ("ClusterRole", "Role")
_SUBJECT_KINDS = ("Group", "ServiceAccount", "User")


def _quoted(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def default(rt: ResourceType, obj: JsonDict) -> None:
    """What the registry fills in: a Secret's type, and its ``stringData`` folded into ``data``."""
    if rt is SECRETS:
        obj.setdefault("type", "Opaque")
        plain = obj.pop("stringData", None)
        if isinstance(plain, dict):
            data = obj.setdefault("data", {})
            if isinstance(data, dict):
                for key, value in plain.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()


def validate(rt: ResourceType, obj: JsonDict, old: JsonDict | None) -> list[Cause]:
    """The registry's field errors for these kinds (an empty list: valid)."""
    causes: list[Cause] = []
    if rt in (CONFIGMAPS, SECRETS):
        _validate_keys(rt, obj, causes)
    elif rt is ROLES:
        _validate_rules(obj.get("rules"), causes)
    elif rt is ROLEBINDINGS:
        _validate_binding(obj, old, causes)
    return causes


def _validate_keys(rt: ResourceType, obj: JsonDict, causes: list[Cause]) -> None:
    fields = ("data", "binaryData") if rt is CONFIGMAPS else ("data",)
    for field in fields:
        values = obj.get(field) or {}
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if not _CONFIG_KEY.match(key):
                causes.append(
                    Cause(
                        f"{field}[{key}]",
                        "FieldValueInvalid",
                        f"Invalid value: {_quoted(key)}: {_CONFIG_KEY_HELP}",
                    )
                )
            if rt is SECRETS or field == "binaryData":
                try:
                    base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    causes.append(
                        Cause(f"{field}[{key}]", "FieldValueInvalid", "Invalid value: illegal base64 data")
                    )


def _validate_rules(rules: Any, causes: list[Cause]) -> None:
    for index, rule in enumerate(rules or []):
        where = f"rules[{index}]"
        if not isinstance(rule, dict):
            causes.append(Cause(where, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        if not rule.get("verbs"):
            causes.append(
                Cause(
                    f"{where}.verbs",
                    "FieldValueRequired",
                    "Required value: verbs must contain at least one value",
                )
            )
        if rule.get("nonResourceURLs"):
            causes.append(
                Cause(
                    f"{where}.nonResourceURLs",
                    "FieldValueInvalid",
                    "Invalid value: namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.get("resources") and not rule.get("apiGroups"):
            causes.append(
                Cause(
                    f"{where}.apiGroups",
                    "FieldValueRequired",
                    "Required value: resource rules must supply at least one api group",
                )
            )


def _validate_binding(obj: JsonDict, old: JsonDict | None, causes: list[Cause]) -> None:
    given = obj.get("roleRef")
    ref: JsonDict = given if isinstance(given, dict) else {}
    if ref.get("apiGroup") != RBAC:
        causes.append(
            Cause(
                "roleRef.apiGroup",
                "FieldValueNotSupported",
                f'Unsupported value: {_quoted(ref.get("apiGroup", ""))}: supported values: "{RBAC}"',
            )
        )
    if ref.get("kind") not in _ROLE_REF_KINDS:
        supported = ", ".join(f'"{k}"' for k in _ROLE_REF_KINDS)
        causes.append(
            Cause(
                "roleRef.kind",
                "FieldValueNotSupported",
                f"Unsupported value: {_quoted(ref.get('kind', ''))}: supported values: {supported}",
            )
        )
    if not ref.get("name"):
        causes.append(Cause("roleRef.name", "FieldValueRequired", "Required value"))
    if old is not None and old.get("roleRef") != obj.get("roleRef"):
        causes.append(Cause("roleRef", "FieldValueInvalid", "Invalid value: cannot change roleRef"))
    for index, subject in enumerate(obj.get("subjects") or []):
        where = f"subjects[{index}]"
        if not isinstance(subject, dict):
            causes.append(Cause(where, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        if not subject.get("name"):
            causes.append(Cause(f"{where}.name", "FieldValueRequired", "Required value"))
        kind = subject.get("kind")
        if kind not in _SUBJECT_KINDS:
            supported = ", ".join(f'"{k}"' for k in _SUBJECT_KINDS)
            causes.append(
                Cause(
                    f"{where}.kind",
                    "FieldValueNotSupported",
                    f"Unsupported value: {_quoted(kind or '')}: supported values: {supported}",
                )
            )
        elif kind == "ServiceAccount" and subject.get("apiGroup"):
            causes.append(
                Cause(
                    f"{where}.apiGroup",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_quoted(subject["apiGroup"])}: supported values: ""',
                )
            )
