"""The API server's rules for pod specs and rollout strategies: defaults, validation causes, names.

Shared by admission (``admission.Admission``, which defaults and validates whole objects) and the
Deployment controller (``surge_and_unavailable``); kept apart so each rule is written once.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.sandbox.kubernetes import config_kinds
from bot.sandbox.kubernetes.vocabulary import Cause, JsonDict

CONFIG_KINDS = frozenset(config_kinds.KINDS_SERVED)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS_SUBDOMAIN_HELP = (
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


def required_cause(field: str) -> Cause:
    return Cause(field, "FieldValueRequired", "Required value")


def invalid_value(field: str, value: Any, why: str) -> Cause:
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


def validate_pod_spec(spec: Any, path: str, causes: list[Cause], *, template: bool) -> None:
    if not isinstance(spec, dict):
        causes.append(required_cause(f"{path}.containers"))
        return
    containers = spec.get("containers")
    if not containers:
        causes.append(required_cause(f"{path}.containers"))
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(kind) or []):
            where = f"{path}.{kind}[{i}]"
            name = container.get("name") if isinstance(container, dict) else None
            if not name:
                causes.append(required_cause(f"{where}.name"))
            elif not DNS_LABEL.match(str(name)):
                causes.append(invalid_value(f"{where}.name", name, DNS_LABEL_HELP))
            elif name in seen:
                causes.append(
                    Cause(f"{where}.name", "FieldValueDuplicate", f"Duplicate value: {go_value(name)}")
                )
            else:
                seen.add(str(name))
            if not isinstance(container, dict) or not str(container.get("image") or "").strip():
                causes.append(required_cause(f"{where}.image"))
    if template and spec.get("restartPolicy", "Always") != "Always":
        causes.append(
            Cause(
                f"{path}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {go_value(spec["restartPolicy"])}: supported values: "Always"',
            )
        )


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
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
    surge = int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def validate_strategy(spec: JsonDict, causes: list[Cause]) -> None:
    """A Deployment's ``strategy`` and ``progressDeadlineSeconds``, as the API server checks them."""
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
            surge = int_or_percent(rolling.get("maxSurge", "25%"), 100, round_up=True)
            unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), 100, round_up=False)
        except ValueError:
            causes.append(
                invalid_value("spec.strategy.rollingUpdate", rolling, "must be an integer or percentage")
            )
        else:
            if surge == 0 and unavailable == 0:
                causes.append(
                    invalid_value(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        rolling.get("maxUnavailable"),
                        "may not be 0 when `maxSurge` is 0",
                    )
                )
    deadline = spec.get("progressDeadlineSeconds", 600)
    if not isinstance(deadline, int) or deadline <= int(spec.get("minReadySeconds", 0)):
        causes.append(
            invalid_value("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
        )
