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
import json
import re
from typing import Any

from bot.sandbox import k8s_config_kinds
from bot.sandbox.k8s_api import (
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
from bot.sandbox.k8s_select import labels_match, selector_from_spec

_CONFIG_KINDS = frozenset(k8s_config_kinds.KINDS_SERVED)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def go_value(value: Any) -> str:
    """How Go's ``%#v`` prints the values validation messages quote."""
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{items}}}"
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value)


def _required(field: str) -> Cause:
    return Cause(field, "FieldValueRequired", "Required value")


def _invalid_value(field: str, value: Any, why: str) -> Cause:
    return Cause(field, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {why}")


def _image_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        probe.setdefault(key, value)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_container(container: Any) -> None:
    if not isinstance(container, dict):
        return
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = ((env or {}).get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))


def default_pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _default_container(container)


def _validate_pod_spec(spec: Any, path: str, causes: list[Cause], *, template: bool) -> None:
    if not isinstance(spec, dict):
        causes.append(_required(f"{path}.containers"))
        return
    containers = spec.get("containers")
    if not containers:
        causes.append(_required(f"{path}.containers"))
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(kind) or []):
            where = f"{path}.{kind}[{i}]"
            name = container.get("name") if isinstance(container, dict) else None
            if not name:
                causes.append(_required(f"{where}.name"))
            elif not _DNS_LABEL.match(str(name)):
                causes.append(_invalid_value(f"{where}.name", name, _DNS_LABEL_HELP))
            elif name in seen:
                causes.append(
                    Cause(f"{where}.name", "FieldValueDuplicate", f"Duplicate value: {go_value(name)}")
                )
            else:
                seen.add(str(name))
            if not isinstance(container, dict) or not str(container.get("image") or "").strip():
                causes.append(_required(f"{where}.image"))
    if template and spec.get("restartPolicy", "Always") != "Always":
        causes.append(
            Cause(
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {go_value(spec["restartPolicy"])}: supported values: "Always"',
            )
        )


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        percent = int(text[:-1])
        scaled = total * percent / 100
        return int(-(-scaled // 1)) if round_up else int(scaled // 1)
    return int(text)


def surge_and_unavailable(spec: JsonDict) -> tuple[int, int]:
    """A rolling update's maxSurge (rounded up) and maxUnavailable (rounded down), never both 0."""
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate" or replicas == 0:
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


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
                (_DNS_LABEL, _DNS_LABEL_HELP)
                if rt in (NAMESPACES, SERVICES)
                else (_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_HELP)
            )
            if not pattern.match(name) or len(name) > 253:
                causes.append(_invalid_value("metadata.name", name, help_text))
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
        elif rt in _CONFIG_KINDS:
            k8s_config_kinds.default(rt, obj)
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
            _validate_pod_spec(spec, "spec", causes, template=False)
        elif rt is SERVICES:
            self._validate_service(spec if isinstance(spec, dict) else {}, old, causes)
        elif rt in _CONFIG_KINDS:
            causes += k8s_config_kinds.validate(rt, obj, old)
        if causes:
            raise invalid(rt, obj["metadata"].get("name", ""), causes)

    def _validate_workload(
        self, rt: ResourceType, spec: JsonDict, old: JsonDict | None, causes: list[Cause]
    ) -> None:
        selector = spec.get("selector")
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(_required("spec.selector"))
        elif not selector_from_spec(selector):
            causes.append(
                _invalid_value("spec.selector", selector, f"empty selector is invalid for {rt.singular}")
            )
        elif not labels_match(selector_from_spec(selector), {"metadata": {"labels": labels}}):
            causes.append(
                _invalid_value(
                    "spec.template.metadata.labels", labels, "`selector` does not match template `labels`"
                )
            )
        if old is not None and selector and selector != ((old.get("spec") or {}).get("selector")):
            causes.append(_invalid_value("spec.selector", selector, "field is immutable"))
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(_invalid_value("spec.replicas", replicas, "must be greater than or equal to 0"))
        _validate_pod_spec(template.get("spec"), "spec.template.spec", causes, template=True)
        if rt is not DEPLOYMENTS:
            return
        strategy = spec.get("strategy") or {}
        if strategy.get("type") not in ("RollingUpdate", "Recreate"):
            causes.append(
                Cause(
                    "spec.strategy.type",
                    "FieldValueNotSupported",
                    f"Unsupported value: {go_value(strategy.get('type'))}: "
                    'supported values: "Recreate", "RollingUpdate"',
                )
            )
        elif strategy["type"] == "Recreate" and strategy.get("rollingUpdate") is not None:
            causes.append(
                Cause(
                    "spec.strategy.rollingUpdate",
                    "FieldValueForbidden",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                )
            )
        elif strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate") or {}
            try:
                surge = _int_or_percent(rolling.get("maxSurge", "25%"), 100, round_up=True)
                unavailable = _int_or_percent(rolling.get("maxUnavailable", "25%"), 100, round_up=False)
            except ValueError:
                causes.append(
                    _invalid_value("spec.strategy.rollingUpdate", rolling, "must be an integer or percentage")
                )
            else:
                if surge == 0 and unavailable == 0:
                    causes.append(
                        _invalid_value(
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            rolling.get("maxUnavailable"),
                            "may not be 0 when `maxSurge` is 0",
                        )
                    )
        deadline = spec.get("progressDeadlineSeconds", 600)
        if not isinstance(deadline, int) or deadline <= int(spec.get("minReadySeconds", 0)):
            causes.append(
                _invalid_value(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )

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
            causes.append(_required("spec.ports"))
        for i, port in enumerate(ports):
            number = port.get("port") if isinstance(port, dict) else None
            if not isinstance(number, int) or not 0 < number < 65536:
                causes.append(
                    _invalid_value(f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive")
                )
            if len(ports) > 1 and not (isinstance(port, dict) and port.get("name")):
                causes.append(_required(f"spec.ports[{i}].name"))
        old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
        if old_ip and spec.get("clusterIP") != old_ip:
            causes.append(_invalid_value("spec.clusterIPs[0]", spec.get("clusterIP"), "field is immutable"))


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
