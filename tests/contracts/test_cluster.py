"""What the engine relies on from ``bot.ports.Cluster``, checked on the Kubernetes adapter and the stand-in.

Live state, a rolling change that progresses on the clock and ends done, a bad image that fails its
rollout at the progress deadline, rollback (to the previous revision or to a named image), the canary's
steps, promotion and abort, blue-green's idle colour, switch and switch back, and the errors.
"""

from __future__ import annotations

import pytest

from bot.errors import ConfigError, NotFound, PermanentError
from bot.ports import RolloutPhase, Target
from tests.contracts.worlds import CLUSTER, NS, ClusterWorld

OLD = "registry.example/checkout:1.4.1"
NEW = "registry.example/checkout:1.4.2"
BAD = "registry.example/checkout:1.4.3-broken"
SETTLE_S = 8.0
"""Long enough for any rollout here to finish (the emulator replaces pods a few at a time)."""


def target(strategy: str = "rolling", **extra: object) -> Target:
    service = "checkout" if strategy == "blue-green" else None
    return Target(CLUSTER, NS, "checkout", "app", service=service, strategy=strategy, **extra)  # type: ignore[arg-type]


async def test_live_state_is_what_runs(cluster_world: ClusterWorld) -> None:
    cluster_world.add_deployment("checkout", OLD, replicas=3)
    live = await cluster_world.cluster.live(target())
    assert live.image == OLD and live.replicas == 3 and live.color is None
    assert live.revision is not None


async def test_a_rolling_change_progresses_on_the_clock_and_ends_done(cluster_world: ClusterWorld) -> None:
    cluster_world.add_deployment("checkout", OLD)
    before = await cluster_world.cluster.live(target())
    await cluster_world.cluster.set_image(target(), NEW, "d1:deploy")
    assert (await cluster_world.cluster.rollout(target())).phase is RolloutPhase.PROGRESSING
    cluster_world.advance(SETTLE_S)
    done = await cluster_world.cluster.rollout(target())
    assert done.phase is RolloutPhase.DONE
    assert done.desired == done.updated == done.ready == done.available == 2
    live = await cluster_world.cluster.live(target())
    assert live.image == NEW and cluster_world.image("checkout") == NEW
    assert live.revision is not None and before.revision is not None and live.revision > before.revision
    await cluster_world.cluster.set_image(target(), NEW, "d1:deploy")  # a retry changes nothing
    assert (await cluster_world.cluster.rollout(target())).phase is RolloutPhase.DONE
    assert (await cluster_world.cluster.live(target())).revision == live.revision


async def test_a_bad_image_fails_at_the_progress_deadline_and_undo_restores(
    cluster_world: ClusterWorld,
) -> None:
    cluster_world.add_deployment("checkout", OLD, deadline_s=20)
    cluster_world.set_bad_images(["*:*-broken"])
    await cluster_world.cluster.set_image(target(), BAD, "d1:deploy")
    cluster_world.advance(10)
    assert (await cluster_world.cluster.rollout(target())).phase is RolloutPhase.PROGRESSING
    cluster_world.advance(15)
    failed = await cluster_world.cluster.rollout(target())
    assert failed.phase is RolloutPhase.FAILED
    assert "deadline" in failed.message.lower()
    assert failed.updated < failed.desired  # the new pods never all came up; the old ones still serve
    await cluster_world.cluster.undo(target(), None, "d1:undo")
    cluster_world.advance(SETTLE_S)
    assert (await cluster_world.cluster.rollout(target())).phase is RolloutPhase.DONE
    assert cluster_world.image("checkout") == OLD


async def test_undo_to_a_named_image(cluster_world: ClusterWorld) -> None:
    cluster_world.add_deployment("checkout", NEW)
    await cluster_world.cluster.undo(target(), OLD, "d2:undo")
    cluster_world.advance(SETTLE_S)
    assert (await cluster_world.cluster.rollout(target())).phase is RolloutPhase.DONE
    assert (await cluster_world.cluster.live(target())).image == OLD


async def test_undo_without_an_earlier_revision_is_refused(cluster_world: ClusterWorld) -> None:
    cluster_world.add_deployment("checkout", OLD)
    with pytest.raises(PermanentError, match="earlier revision"):
        await cluster_world.cluster.undo(target(), None, "d1:undo")


async def test_canary_steps_promote_and_abort(cluster_world: ClusterWorld) -> None:
    labels = {"app": "checkout", "track": "stable"}
    cluster_world.add_deployment("checkout", OLD, replicas=4, labels=labels)
    canary = target("canary")
    await cluster_world.cluster.canary_step(canary, NEW, 25, "d1:canary:0")
    assert (await cluster_world.cluster.rollout(canary)).phase is RolloutPhase.PROGRESSING
    cluster_world.advance(SETTLE_S)
    step = await cluster_world.cluster.rollout(canary)
    assert step.phase is RolloutPhase.DONE and step.desired == 1  # ceil(25 % of 4)
    assert cluster_world.replicas("checkout-canary") == 1 and cluster_world.image("checkout-canary") == NEW
    assert (await cluster_world.cluster.live(canary)).image == OLD  # the main track still runs the old
    await cluster_world.cluster.canary_step(canary, NEW, 50, "d1:canary:1")
    assert cluster_world.replicas("checkout-canary") == 2
    await cluster_world.cluster.promote_canary(canary, NEW, "d1:promote")
    assert cluster_world.replicas("checkout-canary") == 0
    cluster_world.advance(SETTLE_S)
    assert (await cluster_world.cluster.rollout(canary)).phase is RolloutPhase.DONE
    assert (await cluster_world.cluster.live(canary)).image == NEW
    # The next release's canary is aborted: it goes to zero and the main Deployment is untouched.
    await cluster_world.cluster.canary_step(canary, "registry.example/checkout:1.5.0", 25, "d2:canary:0")
    assert cluster_world.replicas("checkout-canary") == 1
    await cluster_world.cluster.abort_canary(canary, "d2:abort")
    assert cluster_world.replicas("checkout-canary") == 0
    assert cluster_world.image("checkout") == NEW
    await cluster_world.cluster.undo(canary, None, "d2:undo")  # a canary never promoted: nothing to undo
    assert cluster_world.image("checkout") == NEW


async def test_undo_after_a_promoted_canary_rolls_the_main_deployment_back(
    cluster_world: ClusterWorld,
) -> None:
    cluster_world.add_deployment("checkout", OLD, replicas=4, labels={"app": "checkout", "track": "stable"})
    canary = target("canary")
    await cluster_world.cluster.canary_step(canary, NEW, 50, "d1:canary:0")
    await cluster_world.cluster.promote_canary(canary, NEW, "d1:promote")
    cluster_world.advance(SETTLE_S)
    assert cluster_world.image("checkout") == NEW
    await cluster_world.cluster.undo(canary, None, "d1:undo")
    cluster_world.advance(SETTLE_S)
    assert (await cluster_world.cluster.rollout(canary)).phase is RolloutPhase.DONE
    assert cluster_world.image("checkout") == OLD and cluster_world.replicas("checkout-canary") == 0


async def test_a_playbook_replica_count_rescales_with_the_image(cluster_world: ClusterWorld) -> None:
    cluster_world.add_deployment("checkout", OLD, replicas=2)
    await cluster_world.cluster.set_image(target(replicas=3), NEW, "d1:deploy")
    cluster_world.advance(SETTLE_S)
    done = await cluster_world.cluster.rollout(target(replicas=3))
    assert done.phase is RolloutPhase.DONE and done.desired == 3
    assert (await cluster_world.cluster.live(target())).replicas == 3


async def test_blue_green_deploys_the_idle_colour_switches_and_switches_back(
    cluster_world: ClusterWorld,
) -> None:
    cluster_world.add_deployment("checkout", OLD, labels={"app": "checkout", "color": "blue"})
    cluster_world.add_service("checkout", {"app": "checkout", "color": "blue"})
    bg = target("blue-green")
    live = await cluster_world.cluster.live(bg)
    assert live.color == "blue" and live.image == OLD
    idle = await cluster_world.cluster.deploy_color(bg, NEW, "d1:deploy")
    assert idle == "green"
    assert (await cluster_world.cluster.rollout(bg)).phase is RolloutPhase.PROGRESSING
    cluster_world.advance(SETTLE_S)
    assert (await cluster_world.cluster.rollout(bg)).phase is RolloutPhase.DONE
    assert (await cluster_world.cluster.live(bg)).color == "blue"  # no traffic moved yet
    await cluster_world.cluster.switch_traffic(bg, idle, "d1:switch")
    assert cluster_world.selector("checkout")["color"] == "green"
    live = await cluster_world.cluster.live(bg)
    assert live.color == "green" and live.image == NEW
    await cluster_world.cluster.undo(bg, None, "d1:undo")
    assert cluster_world.selector("checkout")["color"] == "blue"
    assert (await cluster_world.cluster.live(bg)).image == OLD


async def test_a_missing_deployment_is_not_found_and_an_unknown_cluster_a_config_error(
    cluster_world: ClusterWorld,
) -> None:
    with pytest.raises(NotFound):
        await cluster_world.cluster.live(target())
    with pytest.raises(NotFound):
        await cluster_world.cluster.set_image(target(), NEW, "d1:deploy")
    elsewhere = Target("nowhere", NS, "checkout", "app")
    with pytest.raises(ConfigError, match="nowhere"):
        await cluster_world.cluster.live(elsewhere)
    cluster_world.add_deployment("checkout", OLD, labels={"app": "checkout", "color": "blue"})
    with pytest.raises(NotFound):
        await cluster_world.cluster.switch_traffic(target("blue-green"), "green", "d1:switch")
