"""The Kubernetes adapter's canary moves: a ``<name>-canary`` copy scaled to a weight, promoted or
scaled back to zero.

Kept apart from ``bot.adapters.kubernetes`` (the port and the rolling moves) because a canary has
rules of its own: the main Deployment's ``shipthread.io/phase`` annotation says whether a canary
step is live, and the main Deployment must not select the canary's pods (its ``track`` label).
"""

from __future__ import annotations

import logging

from bot.adapters import k8s_manifests as m
from bot.adapters.k8s_access import ClusterApi
from bot.adapters.k8s_writes import DeploymentWrites, canary_ref, main_ref, wanted_replicas
from bot.ports import Target

log = logging.getLogger("shipthread.kubernetes")


class CanaryMoves(DeploymentWrites):
    """Canary steps, promotion and abort (mixed into ``KubernetesCluster``)."""

    async def _canary_step(self, api: ClusterApi, target: Target, image: str, weight: int, key: str) -> None:
        stable = main_ref(target)
        main = await api.get(stable)
        m.container_of(main, target.container, stable.describe())
        if m.TRACK_LABEL not in ((main["spec"].get("selector") or {}).get("matchLabels") or {}):
            log.warning(
                "%s has no %r label in its selector: it may select the canary's pods too",
                stable.describe(),
                m.TRACK_LABEL,
            )
        replicas = m.canary_replicas(weight, wanted_replicas(target, main))
        ref = canary_ref(target)
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
        await self._mark(api, stable, main, key, m.Phase.CANARY)

    async def _promote(self, api: ClusterApi, target: Target, image: str, key: str) -> None:
        await self._set_image(api, main_ref(target), target, image, key, phase=m.Phase.PROMOTED)
        await self._scale_canary_to_zero(api, target, key)

    async def _abort(self, api: ClusterApi, target: Target, key: str) -> None:
        await self._scale_canary_to_zero(api, target, key)
        main = await api.get(main_ref(target))
        if m.notes_of(main).get(m.PHASE) == m.Phase.CANARY:
            await self._mark(api, main_ref(target), main, key, m.Phase.ABORTED)

    async def _scale_canary_to_zero(self, api: ClusterApi, target: Target, key: str) -> None:
        ref = canary_ref(target)
        canary = await api.find(ref)
        if canary is None or m.replicas_of(canary) == 0:
            return
        meta = {
            "resourceVersion": canary["metadata"].get("resourceVersion"),
            "annotations": self._changed(key, "canary scaled to 0"),
        }
        await api.patch(ref, {"metadata": meta, "spec": {"replicas": 0}})
