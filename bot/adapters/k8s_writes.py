"""What every rollout strategy of the Kubernetes adapter shares: the names of a target's objects and
the writes they all make (an image put on a Deployment, a phase marked, the change annotations).

It exists so the canary and blue-green moves (``bot.adapters.k8s_canary``,
``bot.adapters.k8s_blue_green``) and the rolling ones (``bot.adapters.kubernetes``) each live in a
module of their own while writing Deployments one way.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.adapters import k8s_manifests as m
from bot.adapters.k8s_access import ClusterApi, Json, Ref
from bot.ports import Target


class DeploymentWrites:
    """The writes every strategy makes; the adapter sets ``_clock`` (the change annotations' time)."""

    _clock: Callable[[], float]

    def _changed(self, key: str, cause: str) -> dict[str, str]:
        return m.change_annotations(key, cause, self._clock())

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


def wanted_replicas(target: Target, dep: Json) -> int:
    """The playbook's replica count, else the one ``dep`` runs now."""
    return m.replicas_of(dep) if target.replicas is None else target.replicas


def main_ref(target: Target) -> Ref:
    return Ref(target.cluster, "Deployment", target.namespace, target.deployment)


def canary_ref(target: Target) -> Ref:
    return main_ref(target).named(f"{target.deployment}-canary")


def color_ref(target: Target, color: str) -> Ref:
    return main_ref(target).named(f"{target.deployment}-{color}")


def color_ref_of(dep: Json, target: Target) -> Ref:
    return main_ref(target).named(m.name_of(dep))


def service_ref(target: Target) -> Ref:
    return main_ref(target).named(target.service or "", kind="Service")


def describe(target: Target, dep: Json) -> str:
    return color_ref_of(dep, target).describe()
