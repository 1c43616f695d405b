"""What the API server does to an object between the request and etcd: defaults, then validation.

Defaults are those of the real registry (replicas 1, RollingUpdate 25 %/25 %, revisionHistoryLimit
10, progressDeadlineSeconds 600, the pod-spec and container defaults, a Service's cluster IP …),
because clients read them back: the rollout controller hashes the defaulted template, and
``kubectl rollout undo`` compares templates field by field. Invalid objects are refused with the
same ``422 Invalid`` causes and messages the API server gives.
"""

from __future__ import annotations

import copy
import itertools

from bot.sandbox.kubernetes import config_kinds
from bot.sandbox.kubernetes.admission_rules import (
    CONFIG_KINDS,
    DNS_LABEL,
    DNS_LABEL_HELP,
    DNS_SUBDOMAIN,
    DNS_SUBDOMAIN_HELP,
    default_pod_spec,
    go_value,
    invalid_value,
    required_cause,
    validate_pod_spec,
    validate_strategy,
)
from bot.sandbox.kubernetes.selector import labels_match, selector_from_spec
from bot.sandbox.kubernetes.vocabulary import (
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    SERVICES,
    Cause,
    JsonDict,
    ResourceType,
    bad_request,
    invalid,
)


class Admission:
    """Defaulting and validation for every kind, plus the allocators a Service or Pod needs."""

    def __init__(self) -> None:
        self._cluster_ips = itertools.count(10)
        self._pod_ips = itertools.count(10)

    def reset(self) -> None:
        self._cluster_ips = itertools.count(10)
        self._pod_ips = itertools.count(10)

    def next_pod_ip(self) -> str:
        n = next(self._pod_ips)
        return f"10.244.{n // 250}.{n % 250 + 2}"

    def _next_cluster_ip(self) -> str:
        n = next(self._cluster_ips)
        return f"10.96.{n // 250}.{n % 250 + 2}"

    # entry points

    def for_create(self, rt: ResourceType, obj: JsonDict) -> JsonDict:
        """The object as it will be stored, or ``ApiError`` (422) if it is invalid."""
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or ""
        causes: list[Cause] = []
        if not name:
            causes.append(
                Cause(
                    "metadata.name", "FieldValueRequired", "Required value: name or generateName is required"
                )
            )
        else:
            pattern, help_text = (
                (DNS_LABEL, DNS_LABEL_HELP)
                if rt in (NAMESPACES, SERVICES)
                else (DNS_SUBDOMAIN, DNS_SUBDOMAIN_HELP)
            )
            if not pattern.match(name) or len(name) > 253:
                causes.append(invalid_value("metadata.name", name, help_text))
        if causes:
            raise invalid(rt, name, causes)
        self._default(rt, obj, None)
        self._validate(rt, obj, None)
        return obj

    def for_update(self, rt: ResourceType, new: JsonDict, old: JsonDict, subresource: str | None) -> JsonDict:
        """A replacement as it will be stored: status from the old object unless writing ``/status``."""
        new = copy.deepcopy(new)
        new["apiVersion"] = rt.group_version
        new["kind"] = rt.kind
        if subresource == "status":
            status = new.get("status")
            version = (new.get("metadata") or {}).get("resourceVersion")
            new = copy.deepcopy(old)
            if version:
                new["metadata"]["resourceVersion"] = version
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            return new
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
        self._default(rt, new, old)
        self._validate(rt, new, old)
        return new

    # defaults

    def _default(self, rt: ResourceType, obj: JsonDict, old: JsonDict | None) -> None:
        spec = obj.get("spec")
        if rt is DEPLOYMENTS and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            default_pod_spec((spec.get("template") or {}).get("spec"))
            if old is None:
                obj["status"] = {}
        elif rt is REPLICASETS and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            default_pod_spec((spec.get("template") or {}).get("spec"))
            if old is None:
                obj["status"] = {"replicas": 0}
        elif rt is PODS:
            default_pod_spec(spec)
            if isinstance(spec, dict):
                spec.setdefault("enableServiceLinks", True)
                spec.setdefault("serviceAccountName", "default")
                spec.setdefault("serviceAccount", spec["serviceAccountName"])
            if old is None:
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt is SERVICES:
            self._default_service(obj, old)
        elif rt in CONFIG_KINDS:
            config_kinds.default(rt, obj)
        elif rt is NAMESPACES:
            meta = obj["metadata"]
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            if old is None:
                obj["status"] = {"phase": "Active"}

    def _default_service(self, obj: JsonDict, old: JsonDict | None) -> None:
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        if spec["type"] == "ExternalName":
            return
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP") or self._next_cluster_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        if spec["clusterIP"] != "None":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if old is None:
            obj["status"] = {"loadBalancer": {}}

    # validation

    def _validate(self, rt: ResourceType, obj: JsonDict, old: JsonDict | None) -> None:
        causes: list[Cause] = []
        spec = obj.get("spec")
        if rt in (DEPLOYMENTS, REPLICASETS):
            self._validate_workload(rt, spec if isinstance(spec, dict) else {}, old, causes)
        elif rt is PODS:
            validate_pod_spec(spec, "spec", causes, template=False)
        elif rt is SERVICES:
            self._validate_service(spec if isinstance(spec, dict) else {}, old, causes)
        elif rt in CONFIG_KINDS:
            causes += config_kinds.validate(rt, obj, old)
        if causes:
            raise invalid(rt, obj["metadata"].get("name", ""), causes)

    def _validate_workload(
        self, rt: ResourceType, spec: JsonDict, old: JsonDict | None, causes: list[Cause]
    ) -> None:
        selector = spec.get("selector")
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(required_cause("spec.selector"))
        elif not selector_from_spec(selector):
            causes.append(
                invalid_value("spec.selector", selector, f"empty selector is invalid for {rt.singular}")
            )
        elif not labels_match(selector_from_spec(selector), {"metadata": {"labels": labels}}):
            causes.append(
                invalid_value(
                    "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
                )
            )
        if old is not None and selector and selector != ((old.get("spec") or {}).get("selector")):
            causes.append(invalid_value("spec.selector", selector, "field is immutable"))
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(invalid_value("spec.replicas", replicas, "must be greater than or equal to 0"))
        validate_pod_spec(template.get("spec"), "spec.template.spec", causes, template=True)
        if rt is not DEPLOYMENTS:
            return
        validate_strategy(spec, causes)

    def _validate_service(self, spec: JsonDict, old: JsonDict | None, causes: list[Cause]) -> None:
        if spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append(
                Cause(
                    "spec.type",
                    "FieldValueNotSupported",
                    f'Unsupported value: {go_value(spec.get("type"))}: supported values: "ClusterIP", '
                    '"ExternalName", "LoadBalancer", "NodePort"',
                )
            )
        ports = spec.get("ports") or []
        if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
            causes.append(required_cause("spec.ports"))
        for i, port in enumerate(ports):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(
                    invalid_value(f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive")
                )
            if len(ports) > 1 and not (isinstance(port, dict) and port.get("name")):
                causes.append(required_cause(f"spec.ports[{i}].name"))
        old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
        if old_ip and spec.get("clusterIP") != old_ip:
            causes.append(invalid_value("spec.clusterIPs[0]", spec.get("clusterIP"), "field is immutable"))


def check_name_matches(obj: JsonDict, name: str, namespace: str | None) -> None:
    """A body naming another object (or namespace) than the URL is a 400, as on a real server."""
    meta = obj.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    if namespace is not None and meta.get("namespace") and meta["namespace"] != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
