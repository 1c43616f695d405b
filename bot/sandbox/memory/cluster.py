"""An in-memory Kubernetes as the engine sees it through ``bot.ports.Cluster``: the fast tier's cluster.

It models what the Kubernetes adapter reads and writes on a real API server, at the level of the
port: a Deployment's container images, replicas and revisions (a change of template is a new
revision; ``undo`` brings the previous one back as ``kubectl rollout undo`` does), pods that become
ready ``pod_startup_s`` after a change on the injected clock unless their image matches a bad-image
pattern (then the rollout fails once the Deployment's progress deadline passes), the canary's
``<name>-canary`` Deployment, and the blue-green ``<name>-blue|green`` Deployments behind a Service's
colour selector. The contract suite (``tests/contracts/test_cluster.py``) runs the same tests against
this and against the adapter over HTTP against the Kubernetes emulator.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.errors import ConfigError, NotFound, PermanentError
from bot.ports import Clock, LiveState, RolloutPhase, RolloutStatus, Target

__all__ = ["MemoryCluster", "Workload"]

COLORS = ("blue", "green")


@dataclass(slots=True)
class Workload:
    """One Deployment: its pod template (images and labels), scale, revisions and change time."""

    name: str
    images: dict[str, str]
    replicas: int
    labels: dict[str, str] = field(default_factory=dict)
    progress_deadline_s: float = 600.0
    revision: int = 1
    changed_at: float = 0.0
    history: dict[int, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)
    phase: str = "rolling"
    """The adapter's ``shipthread.io/phase``: rolling, canary, promoted, aborted or rolled-back."""

    def template(self) -> tuple[dict[str, str], dict[str, str]]:
        return dict(self.images), dict(self.labels)

    def change(self, now: float, images: dict[str, str], labels: dict[str, str] | None = None) -> None:
        """A new pod template: a new revision, rolled out from ``now`` (the same template changes nothing)."""
        new = (dict(images), dict(self.labels if labels is None else labels))
        if new == self.template():
            return
        self.history[self.revision] = self.template()
        self.images, self.labels = new
        self.revision = max(self.history) + 1
        self.changed_at = now

    def scale(self, now: float, replicas: int) -> None:
        if replicas != self.replicas:
            self.replicas = replicas
            self.changed_at = now


@dataclass(slots=True)
class _Service:
    selector: dict[str, str]
    deployed_color: str | None = None


class MemoryCluster:
    """``bot.ports.Cluster`` over Deployments and Services held in memory, on the clock it is given."""

    def __init__(
        self, clock: Clock, *, pod_startup_s: float = 0.25, clusters: Iterable[str] = ("main",)
    ) -> None:
        self._clock = clock
        self.pod_startup_s = pod_startup_s
        self._clusters = set(clusters)
        self._workloads: dict[tuple[str, str, str], Workload] = {}
        self._services: dict[tuple[str, str, str], _Service] = {}
        self.bad_images: list[str] = []

    # --- steering -----------------------------------------------------------------------------------

    def add_deployment(
        self,
        name: str,
        image: str,
        *,
        replicas: int = 2,
        namespace: str = "shop",
        cluster: str = "main",
        container: str = "app",
        labels: dict[str, str] | None = None,
        progress_deadline_s: float = 600.0,
    ) -> Workload:
        """A Deployment as the operator made it, already rolled out."""
        workload = Workload(
            name, {container: image}, replicas, dict(labels or {}), progress_deadline_s,
            changed_at=self._now() - self.pod_startup_s,
        )  # fmt: skip
        self._workloads[(cluster, namespace, name)] = workload
        return workload

    def add_service(
        self, name: str, selector: dict[str, str], *, namespace: str = "shop", cluster: str = "main"
    ) -> None:
        self._services[(cluster, namespace, name)] = _Service(dict(selector))

    def set_bad_images(self, patterns: Iterable[str]) -> None:
        """Images matching these ``fnmatch`` patterns never become ready."""
        self.bad_images = [str(p) for p in patterns]

    def deployment(self, name: str, *, namespace: str = "shop", cluster: str = "main") -> Workload:
        found = self._workloads.get((cluster, namespace, name))
        if found is None:
            raise NotFound(f"Deployment {name} in namespace {namespace} of cluster {cluster} not found")
        return found

    def selector(self, name: str, *, namespace: str = "shop", cluster: str = "main") -> dict[str, str]:
        return dict(self._service(cluster, namespace, name).selector)

    # --- the port -------------------------------------------------------------------------------------

    async def preload(self) -> None:
        """Nothing to load: the stand-in is plain Python already imported."""

    async def live(self, target: Target) -> LiveState:
        color = None
        if target.strategy == "blue-green":
            color = self._live_color(target)
            dep = self._color(target, color)
        else:
            dep = self._main(target)
        return LiveState(self._image(dep, target), dep.revision, dep.replicas, color)

    async def set_image(self, target: Target, image: str, key: str) -> None:
        self._put_image(self._main(target), target, image, "rolling")

    async def rollout(self, target: Target) -> RolloutStatus:
        if target.strategy == "blue-green":
            service = self._service(target.cluster, target.namespace, self._service_name(target))
            dep = self._color(target, service.deployed_color or self._live_color(target))
        else:
            dep = self._main(target)
            if target.strategy == "canary" and dep.phase == "canary":
                dep = self._find(target, f"{target.deployment}-canary") or dep
        return self._status(dep, target)

    async def canary_step(self, target: Target, image: str, weight: int, key: str) -> None:
        if not 0 <= weight <= 100:
            raise PermanentError(f"canary weight must be between 0 and 100 %, not {weight}")
        main = self._main(target)
        self._image(main, target)
        wanted = main.replicas if target.replicas is None else target.replicas
        replicas = 0 if weight == 0 else max(1, math.ceil(weight * wanted / 100))
        name = f"{target.deployment}-canary"
        canary = self._find(target, name)
        labels = {**main.labels, "track": "canary"}
        if canary is None:
            canary = Workload(name, {**main.images, target.container: image}, replicas, labels,
                              main.progress_deadline_s, changed_at=self._now())  # fmt: skip
            self._workloads[(target.cluster, target.namespace, name)] = canary
        else:
            canary.change(self._now(), {**canary.images, target.container: image}, labels)
            canary.scale(self._now(), replicas)
        main.phase = "canary"

    async def promote_canary(self, target: Target, image: str, key: str) -> None:
        self._put_image(self._main(target), target, image, "promoted")
        self._canary_to_zero(target)

    async def abort_canary(self, target: Target, key: str) -> None:
        self._canary_to_zero(target)
        main = self._main(target)
        if main.phase == "canary":
            main.phase = "aborted"

    async def deploy_color(self, target: Target, image: str, key: str) -> str:
        live = self._live_color(target)
        service = self._service(target.cluster, target.namespace, self._service_name(target))
        idle = _other(live)
        source = self._color(target, live)
        replicas = source.replicas if target.replicas is None else target.replicas
        name = f"{target.deployment}-{idle}"
        existing = self._find(target, name)
        if existing is None:
            labels = {**source.labels, target.color_label: idle}
            self._workloads[(target.cluster, target.namespace, name)] = Workload(
                name, {**source.images, target.container: image}, replicas, labels,
                source.progress_deadline_s, changed_at=self._now(),
            )  # fmt: skip
        else:
            existing.change(self._now(), {**existing.images, target.container: image})
            existing.scale(self._now(), replicas)
        service.deployed_color = idle
        return idle

    async def switch_traffic(self, target: Target, color: str, key: str) -> None:
        _other(color)
        self._color(target, color)  # never switch traffic to nothing
        service = self._service(target.cluster, target.namespace, self._service_name(target))
        service.selector[target.color_label] = color

    async def undo(self, target: Target, image: str | None, key: str) -> None:
        if target.strategy == "blue-green":
            self._undo_color(target, image)
            return
        main = self._main(target)
        if target.strategy == "canary":
            self._canary_to_zero(target)
            phase = main.phase
        else:
            phase = "rolling"
        if image is not None:
            self._put_image(main, target, image, "rolled-back")
        elif phase in ("canary", "aborted"):
            main.phase = "aborted"  # the canary never reached the main Deployment
        else:
            previous = next(
                (r for r in sorted(main.history, reverse=True) if main.history[r] != main.template()), None
            )
            if previous is None:
                raise PermanentError(
                    f"Deployment {target.deployment} has no earlier revision to roll back to"
                )
            images, labels = main.history[previous]
            main.change(self._now(), images, labels)
            main.phase = "rolled-back"

    # --- inside ---------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _check_cluster(self, target: Target) -> None:
        if target.cluster not in self._clusters:
            known = ", ".join(sorted(self._clusters))
            raise ConfigError(f"unknown Kubernetes cluster {target.cluster!r} (configured: {known})")

    def _find(self, target: Target, name: str) -> Workload | None:
        self._check_cluster(target)
        return self._workloads.get((target.cluster, target.namespace, name))

    def _main(self, target: Target) -> Workload:
        self._check_cluster(target)
        return self.deployment(target.deployment, namespace=target.namespace, cluster=target.cluster)

    def _image(self, dep: Workload, target: Target) -> str:
        if target.container not in dep.images:
            raise PermanentError(f"Deployment {dep.name} has no container {target.container!r}")
        return dep.images[target.container]

    def _put_image(self, dep: Workload, target: Target, image: str, phase: str) -> None:
        self._image(dep, target)
        dep.change(self._now(), {**dep.images, target.container: image})
        if target.replicas is not None:
            dep.scale(self._now(), target.replicas)
        dep.phase = phase

    def _canary_to_zero(self, target: Target) -> None:
        canary = self._find(target, f"{target.deployment}-canary")
        if canary is not None:
            canary.scale(self._now(), 0)

    def _status(self, dep: Workload, target: Target) -> RolloutStatus:
        elapsed = self._now() - dep.changed_at
        bad = any(fnmatch.fnmatchcase(image, p) for image in dep.images.values() for p in self.bad_images)
        if not bad and elapsed >= self.pod_startup_s:
            updated = ready = dep.replicas
        else:
            # A rolling update surges a quarter of the pods first; the old ones serve meanwhile.
            updated, ready = min(dep.replicas, max(1, math.ceil(dep.replicas / 4))), dep.replicas
        counts = {"desired": dep.replicas, "updated": updated, "ready": ready, "available": ready}
        if updated >= dep.replicas and not bad and elapsed >= self.pod_startup_s:
            return RolloutStatus(
                RolloutPhase.DONE, f'deployment "{dep.name}" successfully rolled out', **counts
            )
        if elapsed > dep.progress_deadline_s:
            text = (f'deployment "{dep.name}" exceeded its progress deadline: ReplicaSet "{dep.name}" has '
                    "timed out progressing. (ProgressDeadlineExceeded)")  # fmt: skip
            return RolloutStatus(RolloutPhase.FAILED, text, **counts)
        waiting = f"{updated} out of {dep.replicas} new replicas have been updated..."
        if elapsed > target.rollout_timeout_s:
            text = (f'deployment "{dep.name}" did not finish rolling out within the playbook\'s '
                    f"{target.rollout_timeout_s:g}s rollout timeout ({waiting})")  # fmt: skip
            return RolloutStatus(RolloutPhase.FAILED, text, **counts)
        message = f'Waiting for deployment "{dep.name}" rollout to finish: {waiting}'
        return RolloutStatus(RolloutPhase.PROGRESSING, message, **counts)

    # --- blue-green -------------------------------------------------------------------------------

    def _service_name(self, target: Target) -> str:
        if not target.service:
            raise PermanentError(
                f"Deployment {target.deployment} in namespace {target.namespace} of cluster {target.cluster} "
                "has no Service to switch: blue-green needs the target's service"
            )
        return target.service

    def _service(self, cluster: str, namespace: str, name: str) -> _Service:
        found = self._services.get((cluster, namespace, name))
        if found is None:
            raise NotFound(f"Service {name} in namespace {namespace} of cluster {cluster} not found")
        return found

    def _live_color(self, target: Target) -> str:
        service = self._service(target.cluster, target.namespace, self._service_name(target))
        color = service.selector.get(target.color_label)
        if color is None:
            raise PermanentError(
                f"Service {target.service} does not select on the {target.color_label!r} label: "
                f"blue-green needs a selector such as {{app: ..., {target.color_label}: blue}}"
            )
        return color

    def _color(self, target: Target, color: str) -> Workload:
        """``<name>-<color>``, or the main Deployment while it is that colour (before the first switch)."""
        found = self._find(target, f"{target.deployment}-{color}")
        if found is not None:
            return found
        main = self._find(target, target.deployment)
        if main is not None and main.labels.get(target.color_label) == color:
            return main
        raise NotFound(f"no Deployment runs the {color} colour of {target.deployment} in namespace "
                       f"{target.namespace} of cluster {target.cluster}")  # fmt: skip

    def _undo_color(self, target: Target, image: str | None) -> None:
        service = self._service(target.cluster, target.namespace, self._service_name(target))
        live = self._live_color(target)
        other = _other(live)
        if image is None:
            back = other if (service.deployed_color or live) == live else live
        else:
            running = next(
                (c for c in (other, live) if self._color_or_none(target, c) is not None
                 and self._image(self._color(target, c), target) == image),
                None,
            )  # fmt: skip
            back = running or live
            if running is None:
                self._put_image(self._color(target, live), target, image, "rolled-back")
        self._color(target, back)
        service.selector[target.color_label] = back
        service.deployed_color = back

    def _color_or_none(self, target: Target, color: str) -> Workload | None:
        try:
            return self._color(target, color)
        except NotFound:
            return None


def _other(color: str) -> str:
    if color not in COLORS:
        raise PermanentError(f"blue-green colours are {' and '.join(COLORS)}, not {color!r}")
    return COLORS[1 - COLORS.index(color)]
