"""The Kubernetes adapter's blue-green moves: ``<name>-blue`` and ``<name>-green`` behind one
Service whose selector is switched, and switched back on a rollback.

Kept apart from ``bot.adapters.kubernetes`` (the port and the rolling moves) because blue-green
has objects of its own: the Service's selector says which colour is live, and its annotations
which colour the last step deployed (so a retried or restarted step finds it).
"""

from __future__ import annotations

from bot.adapters import k8s_manifests as m
from bot.adapters.k8s_access import ClusterApi, Json
from bot.adapters.k8s_writes import (
    DeploymentWrites,
    color_ref,
    color_ref_of,
    describe,
    main_ref,
    service_ref,
    wanted_replicas,
)
from bot.errors import NotFound, PermanentError
from bot.ports import Target


class BlueGreenMoves(DeploymentWrites):
    """Deploying the idle colour, switching traffic, switching it back (mixed into ``KubernetesCluster``)."""

    async def _blue_green_service(self, api: ClusterApi, target: Target) -> tuple[Json, str]:
        if not target.service:
            raise PermanentError(
                f"Deployment {target.deployment} in namespace {target.namespace} of cluster {target.cluster} "
                "has no Service to switch: blue-green needs the target's service"
            )
        service = await api.get(service_ref(target))
        color = ((service.get("spec") or {}).get("selector") or {}).get(target.color_label)
        if color is None:
            raise PermanentError(
                f"{service_ref(target).describe()} does not select on the {target.color_label!r} label: "
                f"blue-green needs a selector such as {{app: ..., {target.color_label}: blue}}"
            )
        return service, str(color)

    async def _color_deployment(self, api: ClusterApi, target: Target, color: str) -> Json:
        """``<name>-<color>``, or the main Deployment while it is that colour (before the first switch)."""
        dep = await api.find(color_ref(target, color))
        if dep is not None:
            return dep
        main = await api.find(main_ref(target))
        if main is not None and m.template_labels(main).get(target.color_label) == color:
            return main
        raise NotFound(
            f"no Deployment runs the {color} colour of {target.deployment} in namespace {target.namespace} "
            f"of cluster {target.cluster} (expected {color_ref(target, color).name}, or {target.deployment} "
            f"with pods labelled {target.color_label}={color})"
        )

    async def _deploy_color(self, api: ClusterApi, target: Target, image: str, key: str) -> str:
        service, live = await self._blue_green_service(api, target)
        notes = m.notes_of(service)
        if notes.get(m.DEPLOY_KEY) == key and notes.get(m.DEPLOYED_COLOR):
            return notes[m.DEPLOYED_COLOR]  # a retry after this very step succeeded
        idle = m.other_color(live)
        source = await self._color_deployment(api, target, live)
        replicas = wanted_replicas(target, source)
        ref = color_ref(target, idle)
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
            service_ref(target),
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
        await api.patch(service_ref(target), body)

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
                    color_ref_of(await self._color_deployment(api, target, live), target),
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
            if m.image_of(dep, target.container, describe(target, dep)) == image:
                return color
        return None
