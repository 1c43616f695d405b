"""Canary and blue-green through the Kubernetes adapter, end to end against the Kubernetes emulator.

Each test drives the adapter the way the engine does (step, poll ``rollout`` until it settles,
next step) and checks what the cluster itself holds afterwards: Deployments, their labels and
selectors, the Service's selector — the last of them also with the real kubectl.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.adapters.kubernetes import KubernetesCluster
from bot.errors import NotFound, PermanentError
from bot.ports import RolloutPhase, Target
from tests.support.k8s_emulator import BAD, CLUSTER, NEW, NS, OLD, Emulator, settle

NEWER = "registry.example/checkout:1.5.0"
CANARY = Target(CLUSTER, NS, "checkout", "app", strategy="canary")
BLUE_GREEN = Target(CLUSTER, NS, "checkout", "app", service="checkout", strategy="blue-green")


# --- canary -------------------------------------------------------------------------------------


async def canary_setup(emu: Emulator, cluster: KubernetesCluster, replicas: int = 4) -> None:
    """The label convention: main pods ``track: stable`` (in its selector), the Service selects ``app``."""
    emu.deployment(
        "checkout", replicas=replicas, labels={"app": "checkout", "track": "stable"}, progress_deadline_s=60
    )
    emu.service("checkout", {"app": "checkout"})
    assert (await settle(cluster, CANARY)).phase is RolloutPhase.DONE


async def test_canary_steps_then_promotion(emu: Emulator, cluster: KubernetesCluster) -> None:
    await canary_setup(emu, cluster, replicas=4)

    for step, (weight, expected) in enumerate([(10, 1), (50, 2), (100, 4)]):
        await cluster.canary_step(CANARY, NEW, weight, f"dep-1:canary-{step}")
        status = await settle(cluster, CANARY)
        assert status.phase is RolloutPhase.DONE, status.message
        assert "checkout-canary" in status.message  # rollout follows the canary while a step is live
        assert (status.desired, status.available) == (expected, expected)
        canary = emu.read("checkout-canary")
        assert canary["spec"]["replicas"] == expected
        assert emu.image("checkout-canary") == NEW
        assert emu.image("checkout") == OLD
        assert emu.read("checkout")["metadata"]["generation"] == 1, (
            "a canary step never touches the main pods"
        )

    canary = emu.read("checkout-canary")
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "checkout", "track": "canary"}
    assert canary["spec"]["template"]["metadata"]["labels"] == {"app": "checkout", "track": "canary"}
    assert all(
        rs["spec"]["template"]["metadata"]["labels"]["track"] == "stable"
        for rs in emu.replica_sets("checkout")
    ), "the main Deployment adopted none of the canary's ReplicaSets"

    await cluster.promote_canary(CANARY, NEW, "dep-1:promote")
    promoted = await settle(cluster, CANARY)

    assert promoted.phase is RolloutPhase.DONE, promoted.message
    assert (promoted.desired, promoted.updated) == (4, 4)  # the main Deployment again
    assert emu.read("checkout-canary")["spec"]["replicas"] == 0
    assert emu.image("checkout") == NEW
    live = await cluster.live(CANARY)
    assert (live.image, live.revision, live.replicas) == (NEW, 2, 4)


async def test_a_repeated_canary_step_changes_nothing(emu: Emulator, cluster: KubernetesCluster) -> None:
    await canary_setup(emu, cluster)

    await cluster.canary_step(CANARY, NEW, 50, "dep-1:canary-0")
    await cluster.canary_step(CANARY, NEW, 50, "dep-1:canary-0")

    assert emu.read("checkout-canary")["metadata"]["generation"] == 1


async def test_a_failing_canary_is_undone_without_touching_the_main_deployment(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    emu.bad_images("*-broken")
    await canary_setup(emu, cluster)

    await cluster.canary_step(CANARY, BAD, 25, "dep-1:canary-0")
    failed = await settle(cluster, CANARY)
    assert failed.phase is RolloutPhase.FAILED
    assert "checkout-canary" in failed.message

    await cluster.undo(CANARY, None, "dep-1:rollback")
    await cluster.undo(CANARY, None, "dep-1:rollback")

    assert emu.read("checkout-canary")["spec"]["replicas"] == 0
    main = emu.read("checkout")
    assert (main["metadata"]["generation"], emu.image("checkout")) == (1, OLD)
    assert (await settle(cluster, CANARY)).phase is RolloutPhase.DONE  # reports on the main again


async def test_undo_after_promotion_rolls_the_main_deployment_back(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    await canary_setup(emu, cluster)
    await cluster.canary_step(CANARY, NEW, 50, "dep-1:canary-0")
    await settle(cluster, CANARY)
    await cluster.promote_canary(CANARY, NEW, "dep-1:promote")
    await settle(cluster, CANARY)

    await cluster.undo(CANARY, None, "dep-1:rollback")

    assert (await settle(cluster, CANARY)).phase is RolloutPhase.DONE
    assert emu.image("checkout") == OLD
    assert emu.read("checkout-canary")["spec"]["replicas"] == 0


async def test_abort_scales_the_canary_to_zero(emu: Emulator, cluster: KubernetesCluster) -> None:
    await canary_setup(emu, cluster)
    await cluster.canary_step(CANARY, NEW, 10, "dep-1:canary-0")

    await cluster.abort_canary(CANARY, "dep-1:abort")

    assert emu.read("checkout-canary")["spec"]["replicas"] == 0
    assert emu.image("checkout") == OLD
    status = await settle(cluster, CANARY)
    assert (status.phase, status.desired) == (RolloutPhase.DONE, 4)


async def test_a_canary_weight_out_of_range_is_refused(cluster: KubernetesCluster) -> None:
    with pytest.raises(PermanentError, match="between 0 and 100"):
        await cluster.canary_step(CANARY, NEW, 150, "dep-1:canary-0")


# --- blue-green ----------------------------------------------------------------------------------


async def blue_green_setup(emu: Emulator, cluster: KubernetesCluster, *, deadline_s: int = 600) -> None:
    """Before the first switch the main Deployment is the blue colour; the Service selects the colour."""
    emu.deployment(
        "checkout", replicas=3, labels={"app": "checkout", "color": "blue"}, progress_deadline_s=deadline_s
    )
    emu.service("checkout", {"app": "checkout", "color": "blue"})
    assert (await settle(cluster, BLUE_GREEN)).phase is RolloutPhase.DONE


async def test_blue_green_deploy_switch_and_undo(
    emu: Emulator, cluster: KubernetesCluster, kubectl: Callable[..., str]
) -> None:
    await blue_green_setup(emu, cluster)
    before = await cluster.live(BLUE_GREEN)
    assert (before.color, before.image, before.replicas) == ("blue", OLD, 3)

    color = await cluster.deploy_color(BLUE_GREEN, NEW, "dep-1:deploy")
    status = await settle(cluster, BLUE_GREEN)

    assert color == "green"
    assert status.phase is RolloutPhase.DONE, status.message
    assert "checkout-green" in status.message and status.desired == 3
    green = emu.read("checkout-green")
    assert green["spec"]["selector"]["matchLabels"] == {"app": "checkout", "color": "green"}
    assert (emu.image("checkout-green"), green["spec"]["replicas"]) == (NEW, 3)
    assert emu.read("checkout", kind="Service")["spec"]["selector"]["color"] == "blue", "no traffic yet"

    await cluster.switch_traffic(BLUE_GREEN, "green", "dep-1:switch")

    assert emu.read("checkout", kind="Service")["spec"]["selector"] == {"app": "checkout", "color": "green"}
    live = await cluster.live(BLUE_GREEN)
    assert (live.color, live.image) == ("green", NEW)

    await cluster.undo(BLUE_GREEN, None, "dep-1:rollback")
    await cluster.undo(BLUE_GREEN, None, "dep-1:rollback")  # a retry must not flip back again

    assert kubectl("get", "service", "checkout", "-o", "jsonpath={.spec.selector.color}") == "blue"
    live = await cluster.live(BLUE_GREEN)
    assert (live.color, live.image) == ("blue", OLD)
    assert (await settle(cluster, BLUE_GREEN)).phase is RolloutPhase.DONE


async def test_the_next_blue_green_deployment_uses_the_other_colour(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    await blue_green_setup(emu, cluster)
    assert await cluster.deploy_color(BLUE_GREEN, NEW, "dep-1:deploy") == "green"
    await settle(cluster, BLUE_GREEN)
    await cluster.switch_traffic(BLUE_GREEN, "green", "dep-1:switch")
    assert await cluster.deploy_color(BLUE_GREEN, NEW, "dep-1:deploy") == "green", "a retry finds its colour"

    color = await cluster.deploy_color(BLUE_GREEN, NEWER, "dep-2:deploy")
    assert (await settle(cluster, BLUE_GREEN)).phase is RolloutPhase.DONE
    await cluster.switch_traffic(BLUE_GREEN, color, "dep-2:switch")

    assert color == "blue"
    blue = emu.read("checkout-blue")
    assert blue["spec"]["template"]["metadata"]["labels"] == {"app": "checkout", "color": "blue"}
    live = await cluster.live(BLUE_GREEN)
    assert (live.color, live.image, live.replicas) == ("blue", NEWER, 3)

    await cluster.undo(BLUE_GREEN, NEW, "dep-3:rollback")  # /rollback checkout to 1.4.2: green runs it
    assert (await cluster.live(BLUE_GREEN)).color == "green"


async def test_a_failing_colour_is_undone_without_a_switch(emu: Emulator, cluster: KubernetesCluster) -> None:
    emu.bad_images("*-broken")
    await blue_green_setup(emu, cluster, deadline_s=60)

    await cluster.deploy_color(BLUE_GREEN, BAD, "dep-1:deploy")
    failed = await settle(cluster, BLUE_GREEN)
    assert failed.phase is RolloutPhase.FAILED
    assert "checkout-green" in failed.message

    await cluster.undo(BLUE_GREEN, None, "dep-1:rollback")

    assert emu.read("checkout", kind="Service")["spec"]["selector"]["color"] == "blue"
    restored = await settle(cluster, BLUE_GREEN)
    assert restored.phase is RolloutPhase.DONE  # reports on the live colour again
    assert (await cluster.live(BLUE_GREEN)).image == OLD


async def test_traffic_never_switches_to_a_colour_nothing_runs(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    await blue_green_setup(emu, cluster)

    with pytest.raises(NotFound, match="no Deployment runs the green colour of checkout"):
        await cluster.switch_traffic(BLUE_GREEN, "green", "dep-1:switch")

    assert emu.read("checkout", kind="Service")["spec"]["selector"]["color"] == "blue"


async def test_a_service_without_a_colour_in_its_selector_is_explained(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    emu.deployment("checkout", labels={"app": "checkout"})
    emu.service("checkout", {"app": "checkout"})

    with pytest.raises(PermanentError, match="does not select on the 'color' label"):
        await cluster.deploy_color(BLUE_GREEN, NEW, "dep-1:deploy")


async def test_a_canary_keeps_pod_fields_the_client_does_not_model(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    """The canary copies the main pod template as the server sent it: a field newer than the kubernetes
    client's models (a cluster ahead of the client) must not be dropped on the way."""
    await canary_setup(emu, cluster)
    emu.apps.patch_namespaced_deployment(
        "checkout", NS, [{"op": "add", "path": "/spec/template/spec/futurePodField", "value": "kept"}]
    )
    assert (await settle(cluster, CANARY)).phase is RolloutPhase.DONE  # no 409 to retry: one create

    await cluster.canary_step(CANARY, NEW, 50, "dep-1:canary-0")

    assert emu.read("checkout-canary")["spec"]["template"]["spec"].get("futurePodField") == "kept"


async def test_errors_of_the_canary_create_are_translated(emu: Emulator, cluster: KubernetesCluster) -> None:
    await canary_setup(emu, cluster)
    emu.fault("/deployments$", method="POST", status=503, count=1)

    await cluster.canary_step(CANARY, NEW, 50, "dep-1:canary-0")  # a 503 is retried

    assert emu.calls("POST", "/deployments")[-2:] == [503, 201]
    assert emu.read("checkout-canary")["metadata"]["generation"] == 1
    emu.reset()
    await canary_setup(emu, cluster)
    emu.fault("/deployments$", method="POST", status=403, count=5)
    with pytest.raises(PermanentError, match="refused Shipthread access"):
        await cluster.canary_step(CANARY, NEW, 50, "dep-2:canary-0")
