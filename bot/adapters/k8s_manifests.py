"""What the Kubernetes adapter reads from and writes into Deployment and Service objects.

Pure functions over the JSON the API server sends: a Deployment's image, revision and rollout
progress (kubectl's own rules), the canary and colour Deployments derived from a main one, the
ReplicaSet ``kubectl rollout undo`` would restore, and the annotations in which the adapter keeps
its state in the cluster itself, so that a restarted bot (or a retried step) finds what it did.

Annotations written by Shipthread:

- ``shipthread.io/change-key``: the idempotency key of the last change made to this object.
- ``shipthread.io/change-started``: when that change began (ISO 8601, UTC); the playbook's rollout
  timeout counts from it.
- ``kubernetes.io/change-cause``: the same change in words, shown by ``kubectl rollout history``.
- ``shipthread.io/phase`` (main Deployment): ``rolling``, ``canary`` (a canary step is live and
  ``rollout`` reports on ``<name>-canary``), ``promoted``, ``aborted`` or ``rolled-back``; it tells
  ``undo`` whether the main Deployment was changed by this deployment at all.
- ``shipthread.io/deployed-color`` / ``shipthread.io/deploy-key`` (blue-green Service): the colour
  the last ``deploy_color`` rolled out, which ``rollout`` reports on and ``undo`` switches away from.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.errors import PermanentError
from bot.ports import RolloutPhase, RolloutStatus

Json = dict[str, Any]

KEY = "shipthread.io/change-key"
STARTED = "shipthread.io/change-started"
CAUSE = "kubernetes.io/change-cause"
PHASE = "shipthread.io/phase"
DEPLOYED_COLOR = "shipthread.io/deployed-color"
DEPLOY_KEY = "shipthread.io/deploy-key"
PREVIOUS_COLOR = "shipthread.io/previous-color"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
TRACK_LABEL = "track"
COLORS = ("blue", "green")


class Phase:
    """Values of the ``shipthread.io/phase`` annotation of a main Deployment."""

    ROLLING = "rolling"
    CANARY = "canary"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled-back"


def notes_of(obj: Json) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def name_of(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def replicas_of(deployment: Json) -> int:
    """``spec.replicas``; the API server defaults a missing one to 1."""
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def revision_of(obj: Json) -> int | None:
    value = notes_of(obj).get(REVISION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def template_labels(deployment: Json) -> dict[str, str]:
    template = (deployment.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def container_of(deployment: Json, container: str, where: str) -> Json:
    """The pod template's container named ``container``; a clear error when there is none."""
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = list(pod.get("containers") or [])
    for item in containers:
        if item.get("name") == container:
            return dict(item)
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise PermanentError(f"{where} has no container named {container!r} (its containers: {names})")


def image_of(deployment: Json, container: str, where: str) -> str | None:
    image = container_of(deployment, container, where).get("image")
    return str(image) if image is not None else None


def stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


def parse_stamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def change_annotations(key: str, cause: str, now: float) -> dict[str, str]:
    """The annotations of a change that starts a rollout."""
    return {KEY: key, STARTED: stamp(now), CAUSE: f"shipthread {key}: {cause}"[:1000]}


def image_patch(container: str, image: str) -> Json:
    """The strategic-merge fragment that sets one container's image (``containers`` merge on ``name``)."""
    return {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}


def canary_replicas(weight: int, main_replicas: int) -> int:
    """``weight`` % of the main replica count, rounded up, at least one while the weight is positive."""
    if not 0 <= weight <= 100:
        raise PermanentError(f"canary weight must be between 0 and 100 %, not {weight}")
    if weight == 0:
        return 0
    return max(1, math.ceil(weight * main_replicas / 100))


def other_color(color: str) -> str:
    if color not in COLORS:
        raise PermanentError(f"blue-green colours are {' and '.join(COLORS)}, not {color!r}")
    return COLORS[1 - COLORS.index(color)]


def without_hash(template: Json) -> Json:
    """A pod template without the ``pod-template-hash`` label the ReplicaSet controller adds."""
    clean = copy.deepcopy(template)
    labels = (clean.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return clean


def selector_string(deployment: Json) -> str:
    """``spec.selector`` as a label-selector query (``a=b,c in (d,e),!f``)."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(expr.get("values") or [])
        if op == "In":
            terms.append(f"{key} in ({values})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def _owned_by(rs: Json, deployment: Json) -> bool:
    meta = deployment.get("metadata") or {}
    for owner in (rs.get("metadata") or {}).get("ownerReferences") or []:
        if not owner.get("controller"):
            continue
        if meta.get("uid") and owner.get("uid"):
            if owner["uid"] == meta["uid"]:
                return True
        elif owner.get("kind") == "Deployment" and owner.get("name") == meta.get("name"):
            return True
    return False


def previous_replica_set(replica_sets: Iterable[Json], deployment: Json) -> Json | None:
    """The ReplicaSet ``kubectl rollout undo`` goes back to: the newest revision owned by
    ``deployment`` whose pod template differs from the Deployment's own.

    Normally that is the revision just below the current one; it is also right when the
    controller has not yet made a ReplicaSet for the latest template (undo straight after a change).
    """
    current = without_hash(((deployment.get("spec") or {}).get("template")) or {})
    best: tuple[int, Json] | None = None
    for rs in replica_sets:
        revision = revision_of(rs)
        if revision is None or not _owned_by(rs, deployment):
            continue
        if without_hash(((rs.get("spec") or {}).get("template")) or {}) == current:
            continue
        if best is None or revision > best[0]:
            best = (revision, rs)
    return best[1] if best else None


def derived(
    source: Json,
    *,
    name: str,
    extra_labels: Mapping[str, str],
    container: str,
    image: str,
    replicas: int,
    annotations: Mapping[str, str],
) -> Json:
    """A new Deployment copied from ``source``'s spec: ``extra_labels`` on itself, its selector and
    its pods (so neither Deployment adopts the other's ReplicaSets), ``image`` in ``container``."""
    spec = copy.deepcopy(source.get("spec") or {})
    spec["replicas"] = replicas
    spec.pop("paused", None)
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **extra_labels}
    template = without_hash(spec.get("template") or {})
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), **extra_labels}
    template.setdefault("spec", {})
    template["spec"]["containers"] = [
        {**c, "image": image} if c.get("name") == container else c
        for c in template["spec"].get("containers") or []
    ]
    spec["template"] = template
    meta = source.get("metadata") or {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": {**(meta.get("labels") or {}), **extra_labels},
            "annotations": dict(annotations),
        },
        "spec": spec,
    }


def rollout_status(deployment: Json, *, now: float, timeout_s: float) -> RolloutStatus:
    """Where a Deployment's rollout stands, by ``kubectl rollout status``'s rules, plus our own timeout.

    Failed when the controller reports ``ProgressDeadlineExceeded``, or when it is still not done
    ``timeout_s`` after the ``shipthread.io/change-started`` stamp of the change that began it.
    """
    name = name_of(deployment)
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    desired = replicas_of(deployment)
    updated = int(status.get("updatedReplicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    counts = {"desired": desired, "updated": updated, "ready": ready, "available": available}

    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if not observed:
        message = f'Waiting for deployment "{name}" spec update to be observed...'
    else:
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "Progressing"
                and condition.get("reason") == "ProgressDeadlineExceeded"
            ):
                detail = condition.get("message") or ""
                text = f'deployment "{name}" exceeded its progress deadline' + (
                    f": {detail}" if detail else ""
                )
                return RolloutStatus(RolloutPhase.FAILED, text, **counts)
        if updated < desired:
            message = waiting + f"{updated} out of {desired} new replicas have been updated..."
        elif total > updated:
            message = waiting + f"{total - updated} old replicas are pending termination..."
        elif available < updated or ready < desired:
            message = waiting + f"{min(available, ready)} of {updated} updated replicas are available..."
        else:
            return RolloutStatus(RolloutPhase.DONE, f'deployment "{name}" successfully rolled out', **counts)

    started = parse_stamp(notes_of(deployment).get(STARTED))
    if started is not None and now - started > timeout_s:
        text = (
            f'deployment "{name}" did not finish rolling out within the playbook\'s {timeout_s:g}s '
            f"rollout timeout ({message.removeprefix(waiting)})"
        )
        return RolloutStatus(RolloutPhase.FAILED, text, **counts)
    return RolloutStatus(RolloutPhase.PROGRESSING, message, **counts)
