"""Jenkins' JSON, read: build states, parameters and queue items as python-jenkins hands them over.

Jenkins answers loosely typed JSON (numbers as strings, parameters in two places depending on its
version, queue items naming their job by URL or by name); these readers turn it into the ports'
values and never raise on an odd shape: an unknown result word is a failure, a missing number None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.ports import BuildRef, BuildState, BuildStatus

RESULTS = {
    "SUCCESS": BuildState.SUCCEEDED,
    "FAILURE": BuildState.FAILED,
    "UNSTABLE": BuildState.FAILED,
    "NOT_BUILT": BuildState.FAILED,
    "ABORTED": BuildState.ABORTED,
}
"""Jenkins' result words; any other is taken as a failure (no releasable version)."""


def build_status(ref: BuildRef, info: Mapping[str, Any], now: float) -> BuildStatus:
    url = str(info["url"]) if info.get("url") else None
    started_s = (as_int(info.get("timestamp")) or 0) / 1000
    estimate_ms = as_int(info.get("estimatedDuration"))
    estimated = estimate_ms / 1000 if estimate_ms is not None and estimate_ms >= 0 else None
    result = info.get("result")
    if info.get("building") or result is None:
        elapsed = max(0.0, now - started_s) if started_s else 0.0
        return BuildStatus(ref, BuildState.RUNNING, url=url, elapsed_s=elapsed, estimated_s=estimated)
    # An unknown result word is no releasable version: treat it as a failure, keep Jenkins' word.
    state = RESULTS.get(str(result), BuildState.FAILED)
    elapsed = (as_int(info.get("duration")) or 0) / 1000
    return BuildStatus(ref, state, url=url, result=str(result), elapsed_s=elapsed, estimated_s=estimated)


def parameter_names(job_info: Mapping[str, Any]) -> set[str]:
    """Parameters a job declares: under ``property`` (current Jenkins) or ``actions`` (older)."""
    names: set[str] = set()
    for section in ("property", "actions"):
        for entry in job_info.get(section) or ():
            if isinstance(entry, Mapping):
                for definition in entry.get("parameterDefinitions") or ():
                    if isinstance(definition, Mapping) and definition.get("name"):
                        names.add(str(definition["name"]))
    return names


def parameters(obj: Mapping[str, Any]) -> dict[str, str]:
    """Parameter values of a build or queue item: ``actions[].parameters``, or a queue item's ``params``."""
    values: dict[str, str] = {}
    for action in obj.get("actions") or ():
        if isinstance(action, Mapping):
            for p in action.get("parameters") or ():
                if isinstance(p, Mapping) and p.get("name"):
                    values[str(p["name"])] = "" if p.get("value") is None else str(p["value"])
    params = obj.get("params")
    if isinstance(params, str):
        for line in params.splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip():
                values.setdefault(name.strip(), value)
    return values


def is_item_of(item: Mapping[str, Any], job: str) -> bool:
    task = item.get("task")
    if not isinstance(task, Mapping):
        return False
    url = task.get("url")
    if isinstance(url, str) and url:
        path = "/job/" + "/job/".join(job.split("/")) + "/"
        return unquote(urlsplit(url).path).rstrip("/").endswith(path.rstrip("/"))
    return task.get("name") in (job, job.rsplit("/", 1)[-1])


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
