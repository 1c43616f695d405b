"""Typed access to the kubernetes client's models for tests that rely on a field being there.

The client declares almost every field of its models Optional, because the API may omit any of them;
an object the emulator has just answered always carries its metadata, status and pod template, and a
test reads them as facts. These helpers say so once: each asserts that the field is present (so a
missing one fails with its name, not with ``'NoneType' object has no attribute``) and returns it typed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from kubernetes import client, watch

T = TypeVar("T")


class _HasMetadata(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


def present(value: T | None, what: str) -> T:
    """``value``, which the test relies on the server to have filled in."""
    assert value is not None, f"{what} is missing"
    return value


def meta(obj: _HasMetadata) -> client.V1ObjectMeta:
    return present(obj.metadata, "metadata")


def annotations_of(obj: _HasMetadata) -> dict[str, str]:
    return present(meta(obj).annotations, "metadata.annotations")


def labels_of(obj: _HasMetadata) -> dict[str, str]:
    return present(meta(obj).labels, "metadata.labels")


def status(deployment: client.V1Deployment) -> client.V1DeploymentStatus:
    return present(deployment.status, "status")


def conditions(deployment: client.V1Deployment) -> list[client.V1DeploymentCondition]:
    return present(status(deployment).conditions, "status.conditions")


def template_spec(workload: client.V1Deployment | client.V1ReplicaSet) -> client.V1PodSpec:
    """The pod spec of a Deployment's or a ReplicaSet's template."""
    template = present(workload.spec.template, "spec.template")
    return present(template.spec, "spec.template.spec")


def strategy(deployment: client.V1Deployment) -> client.V1DeploymentStrategy:
    return present(deployment.spec.strategy, "spec.strategy")


def pod_spec(pod: client.V1Pod) -> client.V1PodSpec:
    return present(pod.spec, "spec")


def pod_status(pod: client.V1Pod) -> client.V1PodStatus:
    return present(pod.status, "status")


def pod_conditions(pod: client.V1Pod) -> list[client.V1PodCondition]:
    return present(pod_status(pod).conditions, "status.conditions")


def service_spec(service: client.V1Service) -> client.V1ServiceSpec:
    return present(service.spec, "spec")


class Watch:
    """``kubernetes.watch.Watch`` with types: the library leaves the class unannotated."""

    def __init__(self) -> None:
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]

    def stream(
        self, func: Callable[..., object], *args: object, **kwargs: object
    ) -> Iterator[dict[str, Any]]:
        """The events of ``func``'s watch, each ``{"type": ..., "object": <model>, "raw_object": ...}``."""
        events: Iterator[dict[str, Any]] = self._watch.stream(  # type: ignore[no-untyped-call]
            func, *args, **kwargs
        )
        return events

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]
