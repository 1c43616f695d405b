"""Server-side printing: the ``Table`` answers ``kubectl get`` asks for (``Accept: …;as=Table``).

A real API server renders the columns (READY, UP-TO-DATE, AGE, …) itself and kubectl only lays them
out, so without this ``kubectl get deploy`` would print names alone. Columns and their formats
follow the API server's printers for the kinds the emulator serves.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.sandbox.kubernetes.selector import format_selector
from bot.sandbox.kubernetes.vocabulary import (
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICASETS,
    SERVICES,
    JsonDict,
    ResourceType,
)

Column = tuple[str, str, int, str]  # name, type, priority, description
_NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
_AGE: Column = ("Age", "string", 0, "CreationTimestamp is the time the object was created.")


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration`` of apimachinery: 45s, 3m20s, 5h, 12d, 2y…"""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: JsonDict, now: float) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    return human_duration(now - created)


def _containers(obj: JsonDict) -> list[JsonDict]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def _status(obj: JsonDict, key: str) -> int:
    value = (obj.get("status") or {}).get(key)
    return value if isinstance(value, int) else 0


def _deployment(obj: JsonDict, now: float) -> list[Any]:
    containers = _containers(obj)
    return [
        f"{_status(obj, 'readyReplicas')}/{(obj.get('spec') or {}).get('replicas', 0)}",
        _status(obj, "updatedReplicas"),
        _status(obj, "availableReplicas"),
        _age(obj, now),
        ",".join(str(c.get("name")) for c in containers),
        ",".join(str(c.get("image")) for c in containers),
        format_selector((obj.get("spec") or {}).get("selector")),
    ]


def _replicaset(obj: JsonDict, now: float) -> list[Any]:
    containers = _containers(obj)
    return [
        (obj.get("spec") or {}).get("replicas", 0),
        _status(obj, "replicas"),
        _status(obj, "readyReplicas"),
        _age(obj, now),
        ",".join(str(c.get("name")) for c in containers),
        ",".join(str(c.get("image")) for c in containers),
        format_selector((obj.get("spec") or {}).get("selector")),
    ]


def _pod(obj: JsonDict, now: float) -> list[Any]:
    status = obj.get("status") or {}
    statuses = [s for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    total = len((obj.get("spec") or {}).get("containers") or [])
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [
        f"{sum(1 for s in statuses if s.get('ready'))}/{total}",
        reason,
        str(sum(int(s.get("restartCount") or 0) for s in statuses)),
        _age(obj, now),
        status.get("podIP") or "<none>",
        (obj.get("spec") or {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _service(obj: JsonDict, now: float) -> list[Any]:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    ports = []
    for port in spec.get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(spec.get("externalIPs") or []) or ",".join(
        i.get("ip") or i.get("hostname", "") for i in ingress
    )
    if not external:
        external = "<pending>" if kind == "LoadBalancer" else spec.get("externalName", "<none>")
    selector = spec.get("selector") or {}
    return [
        kind,
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        _age(obj, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _namespace(obj: JsonDict, now: float) -> list[Any]:
    return [(obj.get("status") or {}).get("phase", ""), _age(obj, now)]


_PRINTERS: dict[ResourceType, tuple[list[Column], Callable[[JsonDict, float], list[Any]]]] = {
    DEPLOYMENTS: (
        [
            _NAME,
            ("Ready", "string", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this deployment that have "
                "the desired template spec.",
            ),
            (
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least minReadySeconds).",
            ),
            _AGE,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Label selector for pods."),
        ],
        _deployment,
    ),
    REPLICASETS: (
        [
            _NAME,
            ("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            ("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            ("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            _AGE,
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            (
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        _replicaset,
    ),
    PODS: (
        [
            _NAME,
            ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted."),
            _AGE,
            ("IP", "string", 1, "IP address allocated to the pod."),
            ("Node", "string", 1, "Name of the node this pod is scheduled onto."),
            ("Nominated Node", "string", 1, "Name of the node this pod is nominated onto."),
            ("Readiness Gates", "string", 1, "Pod readiness gates."),
        ],
        _pod,
    ),
    SERVICES: (
        [
            _NAME,
            ("Type", "string", 0, "How a service is exposed."),
            ("Cluster-IP", "string", 0, "The IP address of the service."),
            ("External-IP", "string", 0, "External IPs of the service."),
            ("Port(s)", "string", 0, "The ports exposed by the service."),
            _AGE,
            (
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        _service,
    ),
    NAMESPACES: (
        [_NAME, ("Status", "string", 0, "The status of the namespace"), _AGE],
        _namespace,
    ),
}


def _row_object(obj: JsonDict, include: str) -> JsonDict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    rt: ResourceType, objs: list[JsonDict], resource_version: int, query: Mapping[str, str], *, now: float
) -> JsonDict:
    """The ``meta.k8s.io/v1`` Table of ``objs``; ``now`` (the emulator's clock) for their AGE."""
    columns, cells = _PRINTERS.get(rt, ([_NAME, _AGE], lambda obj, now: [_age(obj, now)]))
    include = query.get("includeObject", "Metadata")
    rows = []
    for obj in objs:
        row: JsonDict = {"cells": [obj["metadata"]["name"], *cells(obj, now)]}
        partial = _row_object(obj, include)
        if partial is not None:
            row["object"] = partial
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": d, "priority": p}
            for n, t, p, d in columns
        ],
        "rows": rows,
    }
