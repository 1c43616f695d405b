"""Kubernetes adapter: the engine's hand on the clusters — rolling, canary, blue-green and rollback.

Implements ``bot.ports.Cluster`` for any number of clusters, one lazily built kubernetes ApiClient
each (``bot.adapters.k8s_access``). Every operation is a read-modify-write of plain JSON objects,
retried as a whole with tenacity: a 409 (someone changed the object between our read and our
write — writes carry the ``resourceVersion`` they were computed from) re-reads and re-applies, a
408, 429, 5xx or timeout tries again (``bot.adapters.http_errors`` holds the mapping), anything
else fails at once with a message naming the object, the namespace and the cluster. Idempotency
keys and the adapter's own state live in annotations (``bot.adapters.k8s_manifests``), so a
retried step or a restarted bot finds what was done.

Conventions the operator's manifests must follow (README of the playbooks says the same):

- *Canary*: the main Deployment's pods carry ``track: stable`` and its selector includes it, so
  the main Deployment never selects canary pods; ``<name>-canary`` is a copy with ``track: canary``
  in its labels, selector and pods. The Service selects ``app`` only, so both tracks take traffic
  in proportion to their replicas (``ceil(weight % × main replicas)`` canary pods).
- *Blue-green*: ``<name>-blue`` and ``<name>-green`` carry ``color: blue|green`` (the target's
  ``color_label``) in labels, selector and pods, and the Service's selector includes that label.
  Before the first blue-green deployment the main Deployment itself may be the live colour
  (its pods labelled with the colour the Service selects); the idle colour is created from it.

``target.strategy`` says which of these a target uses; within a canary, the main Deployment's
``shipthread.io/phase`` annotation says whether a canary step is live (``rollout`` then reports on
``<name>-canary``) or was promoted (``undo`` then rolls the main Deployment back too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from bot.adapters import k8s_manifests as m
from bot.adapters.blocking import BlockingRunner
from bot.adapters.k8s_access import ClusterAccess, ClusterApi, Json, Ref, load_api_classes
from bot.adapters.retrying import RetryPolicy, retry
from bot.domain.deployment import Strategy
from bot.errors import ConfigError, NotFound, PermanentError
from bot.ports import LiveState, RolloutStatus, Target

__all__ = ["ClusterAccess", "KubernetesCluster"]

log = logging.getLogger("shipthread.kubernetes")
T = TypeVar("T")


class KubernetesCluster:
    """The ``Cluster`` port over one or more Kubernetes API servers, named as playbooks name them."""

    def __init__(
        self,
        clusters: Mapping[str, ClusterAccess],
        *,
        timeout_s: float = 10.0,
        policy: RetryPolicy | None = None,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not clusters:
            raise ConfigError("no Kubernetes cluster is configured")
        self._runner = BlockingRunner("kubernetes", workers)
        self._apis = {
            name: ClusterApi(name, access, self._runner, timeout_s) for name, access in clusters.items()
        }
        self._policy = policy or RetryPolicy(attempts=5, total_s=max(3 * timeout_s, 10.0), max_wait_s=2.0)
        self._clock = clock

    async def preload(self) -> None:
        """Load the client's API classes in the adapter's thread pool, off the event loop (at start)."""
        await self._runner.run(load_api_classes)

    def close(self) -> None:
        for api in self._apis.values():
            api.close()
        self._runner.close()

    # --- the port ---------------------------------------------------------------------------------

    async def live(self, target: Target) -> LiveState:
        return await self._retry("read the live state of", target, lambda api: self._live(api, target))

    async def set_image(self, target: Target, image: str, key: str) -> None:
        await self._retry(
            f"set image {image} on",
            target,
            lambda api: self._set_image(api, _main(target), target, image, key),
        )

    async def rollout(self, target: Target) -> RolloutStatus:
        return await self._retry("read the rollout of", target, lambda api: self._rollout(api, target))

    async def canary_step(self, target: Target, image: str, weight: int, key: str) -> None:
        m.canary_replicas(weight, 1)  # a bad weight fails before any call
        await self._retry(
            f"move canary {image} to {weight} % on",
            target,
            lambda api: self._canary_step(api, target, image, weight, key),
        )

    async def promote_canary(self, target: Target, image: str, key: str) -> None:
        await self._retry(
            f"promote canary {image} on", target, lambda api: self._promote(api, target, image, key)
        )

    async def abort_canary(self, target: Target, key: str) -> None:
        await self._retry("abort the canary of", target, lambda api: self._abort(api, target, key))

    async def deploy_color(self, target: Target, image: str, key: str) -> str:
        return await self._retry(
            f"deploy {image} to the idle colour of",
            target,
            lambda api: self._deploy_color(api, target, image, key),
        )

    async def switch_traffic(self, target: Target, color: str, key: str) -> None:
        m.other_color(color)  # an unknown colour fails before any call
        await self._retry(
            f"switch traffic to {color} for", target, lambda api: self._switch(api, target, color, key)
        )

    async def undo(self, target: Target, image: str | None, key: str) -> None:
        what = f"roll back to {image} on" if image else "roll back"
        await self._retry(what, target, lambda api: self._undo(api, target, image, key))

    # --- plumbing -------------------------------------------------------------------------------

    async def _retry(self, what: str, target: Target, op: Callable[[ClusterApi], Awaitable[T]]) -> T:
        api = self._apis.get(target.cluster)
        if api is None:
            known = ", ".join(sorted(self._apis))
            raise ConfigError(f"unknown Kubernetes cluster {target.cluster!r} (configured: {known})")
        where = f"{what} {_main(target).describe()}"
        return await retry(self._policy, where, lambda: op(api), system="kubernetes")

    def _changed(self, key: str, cause: str) -> dict[str, str]:
        return m.change_annotations(key, cause, self._clock())

    # --- rolling and rollback ---------------------------------------------------------------------

    async def _live(self, api: ClusterApi, target: Target) -> LiveState:
        color = None
        if target.strategy == Strategy.BLUE_GREEN:
            _, color = await self._blue_green_service(api, target)
            dep = await self._color_deployment(api, target, color)
        else:
            dep = await api.get(_main(target))
        return LiveState(
            image=m.image_of(dep, target.container, _describe(target, dep)),
            revision=m.revision_of(dep),
            replicas=m.replicas_of(dep),
            color=color,
        )

    async def _set_image(
        self, api: ClusterApi, ref: Ref, target: Target, image: str, key: str, phase: str = m.Phase.ROLLING
    ) -> Json:
        """Put ``image`` on ``ref``'s container (and the playbook's replica count, if it sets one);
        the same image again changes nothing but annotations."""
        dep = await api.get(ref)
        current = m.image_of(dep, target.container, ref.describe())
        notes = m.notes_of(dep)
        meta: Json = {"resourceVersion": dep["metadata"].get("resourceVersion")}
        rescale = target.replicas is not None and target.replicas != m.replicas_of(dep)
        if current != image or rescale:
            cause = f"set image {target.container}={image}"
            meta["annotations"] = {**self._changed(key, cause), m.PHASE: phase}
            spec = m.image_patch(target.container, image)
            if rescale:
                spec["replicas"] = target.replicas
            return await api.patch(ref, {"metadata": meta, "spec": spec})
        if notes.get(m.KEY) == key and notes.get(m.PHASE, phase) == phase:
            return dep
        # Already running the image: record the key (a retry then sees it) without a new generation.
        meta["annotations"] = {m.KEY: key, m.PHASE: phase}
        return await api.patch(ref, {"metadata": meta})

    async def _rollout(self, api: ClusterApi, target: Target) -> RolloutStatus:
        if target.strategy == Strategy.BLUE_GREEN:
            service, color = await self._blue_green_service(api, target)
            followed = m.notes_of(service).get(m.DEPLOYED_COLOR) or color
            dep = await self._color_deployment(api, target, followed)
        else:
            dep = await api.get(_main(target))
            if target.strategy == Strategy.CANARY and m.notes_of(dep).get(m.PHASE) == m.Phase.CANARY:
                dep = await api.find(_canary(target)) or dep
        return m.rollout_status(dep, now=self._clock(), timeout_s=target.rollout_timeout_s)

    async def _undo(self, api: ClusterApi, target: Target, image: str | None, key: str) -> None:
        if target.strategy == Strategy.BLUE_GREEN:
            await self._undo_color(api, target, image, key)
            return
        ref = _main(target)
        dep = await api.get(ref)
        notes = m.notes_of(dep)
        phase = notes.get(m.PHASE, m.Phase.ROLLING)
        if notes.get(m.KEY) == key and phase in (m.Phase.ROLLED_BACK, m.Phase.ABORTED):
            return  # this very undo was applied already
        if target.strategy == Strategy.CANARY:
            await self._scale_canary_to_zero(api, target, key)
        else:
            phase = m.Phase.ROLLING  # a canary phase left from another strategy means nothing here
        if image is not None:
            await self._set_image(api, ref, target, image, key, phase=m.Phase.ROLLED_BACK)
        elif phase in (m.Phase.CANARY, m.Phase.ABORTED):
            # The canary never reached the main Deployment: taking the canary away is the rollback.
            await self._mark(api, ref, dep, key, m.Phase.ABORTED)
        else:
            await self._undo_template(api, ref, dep, key)

    async def _undo_template(self, api: ClusterApi, ref: Ref, dep: Json, key: str) -> None:
        """``kubectl rollout undo``: the previous ReplicaSet's pod template, copied back exactly."""
        previous = m.previous_replica_set(await api.replica_sets(ref, m.selector_string(dep)), dep)
        if previous is None:
            raise PermanentError(f"{ref.describe()} has no earlier revision to roll back to")
        revision = m.revision_of(previous)
        notes = {
            **m.notes_of(dep),
            **self._changed(key, f"roll back to revision {revision}"),
            m.PHASE: m.Phase.ROLLED_BACK,
        }
        # A JSON patch replaces the template whole (a strategic merge would keep fields the old
        # revision did not have); carrying our resourceVersion turns a concurrent change into a 409.
        await api.patch(
            ref,
            [
                {
                    "op": "replace",
                    "path": "/metadata/resourceVersion",
                    "value": dep["metadata"]["resourceVersion"],
                },
                {
                    "op": "replace",
                    "path": "/spec/template",
                    "value": m.without_hash(previous["spec"]["template"]),
                },
                {"op": "add", "path": "/metadata/annotations", "value": notes},
            ],
        )

    async def _mark(self, api: ClusterApi, ref: Ref, dep: Json, key: str, phase: str) -> None:
        """Record ``key`` and ``phase`` on ``dep`` alone: metadata only, no new generation."""
        notes = m.notes_of(dep)
        if notes.get(m.KEY) == key and notes.get(m.PHASE) == phase:
            return
        meta = {
            "resourceVersion": dep["metadata"].get("resourceVersion"),
            "annotations": {m.KEY: key, m.PHASE: phase},
        }
        await api.patch(ref, {"metadata": meta})

    # --- canary ---------------------------------------------------------------------------------

    async def _canary_step(self, api: ClusterApi, target: Target, image: str, weight: int, key: str) -> None:
        main_ref = _main(target)
        main = await api.get(main_ref)
        m.container_of(main, target.container, main_ref.describe())
        if m.TRACK_LABEL not in ((main["spec"].get("selector") or {}).get("matchLabels") or {}):
            log.warning(
                "%s has no %r label in its selector: it may select the canary's pods too",
                main_ref.describe(),
                m.TRACK_LABEL,
            )
        replicas = m.canary_replicas(weight, _wanted_replicas(target, main))
        ref = _canary(target)
        desired = m.derived(
            main,
            name=ref.name,
            extra_labels={m.TRACK_LABEL: "canary"},
            container=target.container,
            image=image,
            replicas=replicas,
            annotations=self._changed(key, f"canary {target.container}={image} at {weight} %"),
        )
        canary = await api.find(ref)
        if canary is None:
            await api.create_deployment(ref, desired)
        elif (
            m.without_hash(canary["spec"].get("template") or {}) != desired["spec"]["template"]
            or m.replicas_of(canary) != replicas
        ):
            notes = {**m.notes_of(canary), **desired["metadata"]["annotations"]}
            await api.patch(
                ref,
                [
                    {
                        "op": "replace",
                        "path": "/metadata/resourceVersion",
                        "value": canary["metadata"]["resourceVersion"],
                    },
                    {"op": "replace", "path": "/spec/template", "value": desired["spec"]["template"]},
                    {"op": "replace", "path": "/spec/replicas", "value": replicas},
                    {"op": "add", "path": "/metadata/annotations", "value": notes},
                ],
            )
        await self._mark(api, main_ref, main, key, m.Phase.CANARY)

    async def _promote(self, api: ClusterApi, target: Target, image: str, key: str) -> None:
        await self._set_image(api, _main(target), target, image, key, phase=m.Phase.PROMOTED)
        await self._scale_canary_to_zero(api, target, key)

    async def _abort(self, api: ClusterApi, target: Target, key: str) -> None:
        await self._scale_canary_to_zero(api, target, key)
        main = await api.get(_main(target))
        if m.notes_of(main).get(m.PHASE) == m.Phase.CANARY:
            await self._mark(api, _main(target), main, key, m.Phase.ABORTED)

    async def _scale_canary_to_zero(self, api: ClusterApi, target: Target, key: str) -> None:
        ref = _canary(target)
        canary = await api.find(ref)
        if canary is None or m.replicas_of(canary) == 0:
            return
        meta = {
            "resourceVersion": canary["metadata"].get("resourceVersion"),
            "annotations": self._changed(key, "canary scaled to 0"),
        }
        await api.patch(ref, {"metadata": meta, "spec": {"replicas": 0}})

    # --- blue-green -----------------------------------------------------------------------------

    async def _blue_green_service(self, api: ClusterApi, target: Target) -> tuple[Json, str]:
        if not target.service:
            raise PermanentError(
                f"Deployment {target.deployment} in namespace {target.namespace} of cluster {target.cluster} "
                "has no Service to switch: blue-green needs the target's service"
            )
        service = await api.get(_service(target))
        color = ((service.get("spec") or {}).get("selector") or {}).get(target.color_label)
        if color is None:
            raise PermanentError(
                f"{_service(target).describe()} does not select on the {target.color_label!r} label: "
                f"blue-green needs a selector such as {{app: ..., {target.color_label}: blue}}"
            )
        return service, str(color)

    async def _color_deployment(self, api: ClusterApi, target: Target, color: str) -> Json:
        """``<name>-<color>``, or the main Deployment while it is that colour (before the first switch)."""
        dep = await api.find(_color(target, color))
        if dep is not None:
            return dep
        main = await api.find(_main(target))
        if main is not None and m.template_labels(main).get(target.color_label) == color:
            return main
        raise NotFound(
            f"no Deployment runs the {color} colour of {target.deployment} in namespace {target.namespace} "
            f"of cluster {target.cluster} (expected {_color(target, color).name}, or {target.deployment} "
            f"with pods labelled {target.color_label}={color})"
        )

    async def _deploy_color(self, api: ClusterApi, target: Target, image: str, key: str) -> str:
        service, live = await self._blue_green_service(api, target)
        notes = m.notes_of(service)
        if notes.get(m.DEPLOY_KEY) == key and notes.get(m.DEPLOYED_COLOR):
            return notes[m.DEPLOYED_COLOR]  # a retry after this very step succeeded
        idle = m.other_color(live)
        source = await self._color_deployment(api, target, live)
        replicas = _wanted_replicas(target, source)
        ref = _color(target, idle)
        existing = await api.find(ref)
        cause = f"{idle}: {target.container}={image}"
        if existing is None:
            await api.create_deployment(
                ref,
                m.derived(
                    source,
                    name=ref.name,
                    extra_labels={target.color_label: idle},
                    container=target.container,
                    image=image,
                    replicas=replicas,
                    annotations=self._changed(key, cause),
                ),
            )
        elif (
            m.image_of(existing, target.container, ref.describe()) != image
            or m.replicas_of(existing) != replicas
        ):
            meta = {
                "resourceVersion": existing["metadata"].get("resourceVersion"),
                "annotations": self._changed(key, cause),
            }
            spec = {**m.image_patch(target.container, image), "replicas": replicas}
            await api.patch(ref, {"metadata": meta, "spec": spec})
        await api.patch(
            _service(target),
            {
                "metadata": {
                    "resourceVersion": service["metadata"].get("resourceVersion"),
                    "annotations": {m.DEPLOYED_COLOR: idle, m.DEPLOY_KEY: key},
                }
            },
        )
        return idle

    async def _switch(self, api: ClusterApi, target: Target, color: str, key: str) -> None:
        service, live = await self._blue_green_service(api, target)
        await self._color_deployment(api, target, color)  # never switch traffic to nothing
        await self._select(api, target, service, live, color, key)

    async def _select(
        self, api: ClusterApi, target: Target, service: Json, live: str, color: str, key: str, **notes: str
    ) -> None:
        annotations = {m.KEY: key, **notes}
        current = m.notes_of(service)
        if live == color and all(current.get(k) == v for k, v in annotations.items()):
            return
        meta: Json = {
            "resourceVersion": service["metadata"].get("resourceVersion"),
            "annotations": annotations,
        }
        body: Json = {"metadata": meta}
        if live != color:
            meta["annotations"] = {**annotations, m.PREVIOUS_COLOR: live}
            body["spec"] = {"selector": {target.color_label: color}}
        await api.patch(_service(target), body)

    async def _undo_color(self, api: ClusterApi, target: Target, image: str | None, key: str) -> None:
        """Blue-green rollback: traffic back to the other colour (or to the colour running ``image``)."""
        service, live = await self._blue_green_service(api, target)
        notes = m.notes_of(service)
        if notes.get(m.KEY) == key and notes.get(m.DEPLOYED_COLOR) == live:
            return  # this very undo was applied already
        other = m.other_color(live)
        if image is None:
            # Switched to the new colour: switch back. Never switched: traffic is already on the old one.
            back = other if notes.get(m.DEPLOYED_COLOR, live) == live else live
        else:
            running = await self._color_running(api, target, image, (other, live))
            back = running or live
            if running is None:
                await self._set_image(
                    api,
                    _color_ref_of(await self._color_deployment(api, target, live), target),
                    target,
                    image,
                    key,
                )
        await self._color_deployment(api, target, back)
        await self._select(api, target, service, live, back, key, **{m.DEPLOYED_COLOR: back})

    async def _color_running(
        self, api: ClusterApi, target: Target, image: str, colors: tuple[str, ...]
    ) -> str | None:
        for color in colors:
            try:
                dep = await self._color_deployment(api, target, color)
            except NotFound:
                continue
            if m.image_of(dep, target.container, _describe(target, dep)) == image:
                return color
        return None


def _wanted_replicas(target: Target, dep: Json) -> int:
    """The playbook's replica count, else the one ``dep`` runs now."""
    return m.replicas_of(dep) if target.replicas is None else target.replicas


def _main(target: Target) -> Ref:
    return Ref(target.cluster, "Deployment", target.namespace, target.deployment)


def _canary(target: Target) -> Ref:
    return _main(target).named(f"{target.deployment}-canary")


def _color(target: Target, color: str) -> Ref:
    return _main(target).named(f"{target.deployment}-{color}")


def _color_ref_of(dep: Json, target: Target) -> Ref:
    return _main(target).named(m.name_of(dep))


def _service(target: Target) -> Ref:
    return _main(target).named(target.service or "", kind="Service")


def _describe(target: Target, dep: Json) -> str:
    return _color_ref_of(dep, target).describe()
