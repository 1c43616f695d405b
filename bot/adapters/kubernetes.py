"""Kubernetes adapter: the engine's hand on the clusters — rolling, canary, blue-green and rollback.

Implements ``bot.ports.Cluster`` for any number of clusters, one lazily built kubernetes ApiClient
each (``bot.adapters.k8s_access``). Every operation is a read-modify-write of plain JSON objects,
retried as a whole with tenacity: a 409 (someone changed the object between our read and our
write — writes carry the ``resourceVersion`` they were computed from) re-reads and re-applies, a
408, 429, 5xx or timeout tries again (``bot.adapters.http_errors`` holds the mapping), anything
else fails at once with a message naming the object, the namespace and the cluster. Idempotency
keys and the adapter's own state live in annotations (``bot.adapters.k8s_manifests``), so a
retried step or a restarted bot finds what was done. This module holds the port and the rolling
moves; the canary and blue-green moves are in ``bot.adapters.k8s_canary`` and
``bot.adapters.k8s_blue_green``, the writes they share in ``bot.adapters.k8s_writes``.

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

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from bot.adapters import k8s_manifests as m
from bot.adapters.blocking import BlockingRunner
from bot.adapters.k8s_access import ClusterAccess, ClusterApi, Json, Ref, load_api_classes
from bot.adapters.k8s_blue_green import BlueGreenMoves
from bot.adapters.k8s_canary import CanaryMoves
from bot.adapters.k8s_writes import canary_ref, describe, main_ref
from bot.adapters.retrying import RetryPolicy, retry
from bot.domain.deployment import Strategy
from bot.errors import ConfigError, PermanentError
from bot.ports import LiveState, RolloutStatus, Target

__all__ = ["ClusterAccess", "KubernetesCluster"]

T = TypeVar("T")


class KubernetesCluster(CanaryMoves, BlueGreenMoves):
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
        """Load what the client loads lazily (``k8s_access.load_api_classes``) in the adapter's thread
        pool, off the event loop (at start)."""
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
            lambda api: self._set_image(api, main_ref(target), target, image, key),
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
        where = f"{what} {main_ref(target).describe()}"
        return await retry(self._policy, where, lambda: op(api), system="kubernetes")

    # --- rolling and rollback ---------------------------------------------------------------------

    async def _live(self, api: ClusterApi, target: Target) -> LiveState:
        color = None
        if target.strategy == Strategy.BLUE_GREEN:
            _, color = await self._blue_green_service(api, target)
            dep = await self._color_deployment(api, target, color)
        else:
            dep = await api.get(main_ref(target))
        return LiveState(
            image=m.image_of(dep, target.container, describe(target, dep)),
            revision=m.revision_of(dep),
            replicas=m.replicas_of(dep),
            color=color,
        )

    async def _rollout(self, api: ClusterApi, target: Target) -> RolloutStatus:
        if target.strategy == Strategy.BLUE_GREEN:
            service, color = await self._blue_green_service(api, target)
            followed = m.notes_of(service).get(m.DEPLOYED_COLOR) or color
            dep = await self._color_deployment(api, target, followed)
        else:
            dep = await api.get(main_ref(target))
            if target.strategy == Strategy.CANARY and m.notes_of(dep).get(m.PHASE) == m.Phase.CANARY:
                dep = await api.find(canary_ref(target)) or dep
        return m.rollout_status(dep, now=self._clock(), timeout_s=target.rollout_timeout_s)

    async def _undo(self, api: ClusterApi, target: Target, image: str | None, key: str) -> None:
        if target.strategy == Strategy.BLUE_GREEN:
            await self._undo_color(api, target, image, key)
            return
        ref = main_ref(target)
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
