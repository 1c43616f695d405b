"""The vocabulary of the Kubernetes API emulator: the resources it serves and the errors it answers.

Everything the other modules of the package share lives here, so that discovery, OpenAPI, the store and
the HTTP layer agree on one list of resources, and every failure leaves the emulator as a real
``Status`` object (kubectl and the kubernetes client both read ``reason``, ``code`` and ``message``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeAlias

JsonDict: TypeAlias = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """A subresource such as ``deployments/scale``; ``group``/``version``/``kind`` describe its body."""

    name: str
    kind: str
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True)
class ResourceType:
    """One kind the emulator serves, described the way discovery describes it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    has_generation: bool = False
    """Whether ``metadata.generation`` counts changes of everything but metadata and status."""

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``, ``pods``: the name error messages use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Deployment.apps``, ``Pod``: the name validation messages use."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def subresource(self, name: str) -> Subresource | None:
        return next((sub for sub in self.subresources if sub.name == name), None)


_SCALE = Subresource("scale", "Scale", group="autoscaling", version="v1")

NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    False,
    ("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    subresources=(Subresource("status", "Namespace"),),
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    True,
    ("po",),
    ("all",),
    subresources=(Subresource("status", "Pod"),),
    has_generation=True,
)
SERVICES = ResourceType(
    "",
    "v1",
    "services",
    "service",
    "Service",
    True,
    ("svc",),
    ("all",),
    verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    subresources=(Subresource("status", "Service"),),
)
EVENTS = ResourceType("", "v1", "events", "event", "Event", True, ("ev",))
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    True,
    ("deploy",),
    ("all",),
    subresources=(_SCALE, Subresource("status", "Deployment", group="apps")),
    has_generation=True,
)
REPLICASETS = ResourceType(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    True,
    ("rs",),
    ("all",),
    subresources=(_SCALE, Subresource("status", "ReplicaSet", group="apps")),
    has_generation=True,
)

# The kinds a bot's own manifests hold besides its workload (``kubectl apply --dry-run=server -k``
# of ``deploy/kubernetes``): plain stored objects, no controller acts on them.
RBAC = "rbac.authorization.k8s.io"
SERVICEACCOUNTS = ResourceType("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",))
CONFIGMAPS = ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",))
SECRETS = ResourceType("", "v1", "secrets", "secret", "Secret", True)
ROLES = ResourceType(RBAC, "v1", "roles", "role", "Role", True)
ROLEBINDINGS = ResourceType(RBAC, "v1", "rolebindings", "rolebinding", "RoleBinding", True)

RESOURCES: tuple[ResourceType, ...] = (
    NAMESPACES, PODS, SERVICES, EVENTS, DEPLOYMENTS, REPLICASETS,
    SERVICEACCOUNTS, CONFIGMAPS, SECRETS, ROLES, ROLEBINDINGS,
)  # fmt: skip
GROUP_VERSIONS: tuple[str, ...] = ("v1", "apps/v1", f"{RBAC}/v1")


def resources_of(group_version: str) -> tuple[ResourceType, ...]:
    return tuple(rt for rt in RESOURCES if rt.group_version == group_version)


def lookup(group_version: str, plural: str) -> ResourceType | None:
    return next((rt for rt in resources_of(group_version) if rt.plural == plural), None)


def rfc3339(epoch: float) -> str:
    """Kubernetes writes times to the second, in UTC, with a ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class ApiError(Exception):
    """A failure answered as a ``Status`` object with its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: JsonDict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JsonDict:
        body: JsonDict = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(rt: ResourceType, name: str, kind: str | None = None) -> JsonDict:
    details: JsonDict = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = kind or rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str = "") -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}',
        _details(rt, name),
    )


@dataclass(frozen=True)
class Cause:
    """One field error of an ``Invalid`` answer."""

    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueForbidden, ...
    message: str


def invalid(rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
    texts = [f"{c.field}: {c.message}" for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(rt, name, kind=rt.kind)
    details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]
    return ApiError(422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"})
