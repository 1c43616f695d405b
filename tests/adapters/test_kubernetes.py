"""The Kubernetes adapter against the Kubernetes emulator, over HTTP, with the real kubernetes client.

Rolling updates, rollback (checked with the real kubectl), idempotency, 409 conflicts, 5xx and slow
answers, missing objects, kubeconfig contexts and two clusters in one adapter. The canary and
blue-green strategies are in ``test_kubernetes_strategies``; the emulator helpers both use are in
``tests.support.k8s_emulator``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes import client as k8s

from bot.adapters.kubernetes import ClusterAccess, KubernetesCluster
from bot.adapters.retrying import RetryPolicy
from bot.errors import ConfigError, NotFound, PermanentError, TransientError
from bot.ports import RolloutPhase, Target
from bot.sandbox.server import ServerThread
from tests.support.k8s_emulator import (
    BAD,
    CLUSTER,
    FAST,
    NEW,
    NS,
    OLD,
    Emulator,
    adapter,
    free_port,
    settle,
)

# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def target() -> Target:
    return Target(CLUSTER, NS, "checkout", "app")


# --- rolling -----------------------------------------------------------------------------------------


async def test_live_reads_the_image_revision_and_replicas(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout", replicas=3)
    await settle(cluster, target)

    live = await cluster.live(target)

    assert (live.image, live.revision, live.replicas, live.color) == (OLD, 1, 3, None)


async def test_rolling_update_rolls_out_and_live_shows_the_new_image_at_revision_2(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout", replicas=3)
    assert (await settle(cluster, target)).phase is RolloutPhase.DONE

    await cluster.set_image(target, NEW, "dep-1:deploy")
    status = await settle(cluster, target)

    assert status.phase is RolloutPhase.DONE, status.message
    assert (status.desired, status.updated, status.ready, status.available) == (3, 3, 3, 3)
    live = await cluster.live(target)
    assert (live.image, live.revision, live.replicas) == (NEW, 2, 3)
    notes = emu.read("checkout")["metadata"]["annotations"]
    assert notes["shipthread.io/change-key"] == "dep-1:deploy"
    assert "dep-1:deploy" in notes["kubernetes.io/change-cause"]
    assert emu.image("checkout", "proxy") == "envoy:1.30", "the other container is left alone"


async def test_set_image_twice_with_the_same_key_makes_one_new_revision(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    await settle(cluster, target)

    await cluster.set_image(target, NEW, "dep-1:deploy")
    await cluster.set_image(target, NEW, "dep-1:deploy")
    await settle(cluster, target)

    assert emu.read("checkout")["metadata"]["generation"] == 2
    assert len(emu.replica_sets("checkout")) == 2

    # The same image under another key records the key and starts nothing.
    await cluster.set_image(target, NEW, "dep-2:deploy")
    after = emu.read("checkout")
    assert after["metadata"]["generation"] == 2
    assert after["metadata"]["annotations"]["shipthread.io/change-key"] == "dep-2:deploy"
    assert len(emu.replica_sets("checkout")) == 2


@pytest.mark.kubectl
async def test_failing_image_fails_on_the_progress_deadline_and_undo_restores_the_previous_image(
    emu: Emulator, cluster: KubernetesCluster, target: Target, kubectl: Callable[..., str]
) -> None:
    emu.bad_images("*-broken")
    emu.deployment("checkout", progress_deadline_s=60)
    await settle(cluster, target)

    await cluster.set_image(target, BAD, "dep-1:deploy")
    failed = await settle(cluster, target)

    assert failed.phase is RolloutPhase.FAILED
    assert "exceeded its progress deadline" in failed.message
    assert (
        kubectl("get", "deploy", "checkout", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        == BAD
    )

    await cluster.undo(target, None, "dep-1:rollback")
    restored = await settle(cluster, target)

    assert restored.phase is RolloutPhase.DONE, restored.message
    assert kubectl("get", "deploy", "checkout", "-o", "jsonpath={..image}").split() == [OLD, "envoy:1.30"]
    live = await cluster.live(target)
    assert (live.image, live.revision) == (OLD, 3)  # revision 1's ReplicaSet came back as revision 3
    rollback = emu.read("checkout")["spec"]["template"]
    assert "pod-template-hash" not in rollback["metadata"]["labels"]


async def test_the_playbooks_own_rollout_timeout_fails_a_stuck_rollout(emu: Emulator, target: Target) -> None:
    now = [1_000_000.0]
    cluster = adapter((CLUSTER, emu), clock=lambda: now[0])
    try:
        emu.bad_images("*-broken")
        emu.deployment("checkout")  # the default 600 s progress deadline is 6 s away in real time
        await settle(cluster, target)
        stuck = Target(CLUSTER, NS, "checkout", "app", rollout_timeout_s=300)

        await cluster.set_image(stuck, BAD, "dep-1:deploy")
        assert (await cluster.rollout(stuck)).phase is RolloutPhase.PROGRESSING
        now[0] += 301
        failed = await cluster.rollout(stuck)

        assert failed.phase is RolloutPhase.FAILED
        assert "300s rollout timeout" in failed.message
        await cluster.undo(stuck, None, "dep-1:rollback")
        assert (await settle(cluster, stuck)).phase is RolloutPhase.DONE
        assert emu.image("checkout") == OLD
    finally:
        cluster.close()


async def test_undo_with_an_image_sets_that_image(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout", image=NEW)
    await settle(cluster, target)

    await cluster.undo(target, OLD, "dep-2:rollback")

    assert (await settle(cluster, target)).phase is RolloutPhase.DONE
    assert (await cluster.live(target)).image == OLD


async def test_undo_twice_with_the_same_key_rolls_back_once(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    await settle(cluster, target)
    await cluster.set_image(target, NEW, "dep-1:deploy")
    await settle(cluster, target)

    await cluster.undo(target, None, "dep-1:rollback")
    await cluster.undo(target, None, "dep-1:rollback")  # a retry must not flip back to NEW

    await settle(cluster, target)
    assert emu.image("checkout") == OLD
    assert (await cluster.live(target)).revision == 3


async def test_undo_without_an_earlier_revision_says_so(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    await settle(cluster, target)

    with pytest.raises(PermanentError, match="no earlier revision"):
        await cluster.undo(target, None, "dep-1:rollback")


# --- conflicts, faults and timeouts ------------------------------------------------------------------


@pytest.mark.parametrize("change", ["set_image", "undo"])
async def test_a_change_between_read_and_write_is_a_409_that_is_reread_and_reapplied(
    emu: Emulator, cluster: KubernetesCluster, target: Target, change: str
) -> None:
    emu.deployment("checkout")
    await settle(cluster, target)
    if change == "undo":
        await cluster.set_image(target, NEW, "dep-1:deploy")
        await settle(cluster, target)
    patches = len(emu.calls("PATCH", "/deployments/checkout"))
    # Hold the adapter's PATCH for a moment; meanwhile someone else changes the Deployment.
    emu.fault("/deployments/checkout$", method="PATCH", status=None, delay=1.0)

    if change == "undo":
        pending = asyncio.create_task(cluster.undo(target, None, "dep-1:rollback"))
    else:
        pending = asyncio.create_task(cluster.set_image(target, NEW, "dep-1:deploy"))
    for _ in range(500):  # the fault is used up once our PATCH is being held
        if not emu.faults():
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread(emu.annotate, "checkout", {"team": "payments"})
    await pending

    # theirs, ours refused, ours again
    assert emu.calls("PATCH", "/deployments/checkout")[patches:] == [200, 409, 200]
    assert emu.read("checkout")["metadata"]["annotations"]["team"] == "payments"
    assert emu.image("checkout") == (OLD if change == "undo" else NEW)


async def test_5xx_answers_are_retried_until_the_call_succeeds(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    emu.fault("/deployments/checkout$", method="GET", status=503, count=2)

    await cluster.set_image(target, NEW, "dep-1:deploy")

    assert emu.calls("GET", "/deployments/checkout") == [503, 503, 200]
    assert emu.image("checkout") == NEW


async def test_persistent_5xx_gives_a_transient_error_naming_the_deployment(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    emu.fault("/deployments/checkout$", status=500, count=100)

    with pytest.raises(TransientError, match="cluster prod-eu answered 500") as caught:
        await cluster.set_image(target, NEW, "dep-1:deploy")

    assert "for Deployment checkout in namespace shop: Internal error" in str(caught.value)
    assert len(emu.calls("GET", "/deployments/checkout")) == FAST.attempts


async def test_an_answer_slower_than_the_timeout_gives_a_transient_error(
    emu: Emulator, target: Target
) -> None:
    emu.deployment("checkout")
    emu.fault("/deployments/checkout$", status=None, delay=3.0, count=10)
    policy = RetryPolicy(attempts=2, total_s=2.0, initial_s=0.01, max_wait_s=0.05, jitter_s=0.0)
    cluster = adapter((CLUSTER, emu), timeout_s=0.3, policy=policy)
    try:
        with pytest.raises(TransientError, match=r"did not answer .*\(timeout 0\.3s\)"):
            await cluster.live(target)
    finally:
        cluster.close()


async def test_a_cluster_that_refuses_connections_gives_a_transient_error(target: Target) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    cluster = KubernetesCluster({CLUSTER: ClusterAccess(server=nobody)}, timeout_s=1.0, policy=FAST)
    try:
        with pytest.raises(TransientError, match=f"cluster prod-eu \\({nobody}\\) did not answer"):
            await cluster.live(target)
    finally:
        cluster.close()


async def test_forbidden_is_permanent_and_not_retried(
    emu: Emulator, cluster: KubernetesCluster, target: Target
) -> None:
    emu.deployment("checkout")
    emu.fault("/deployments/checkout$", method="GET", status=403, count=5)

    with pytest.raises(PermanentError, match="refused Shipthread access") as caught:
        await cluster.live(target)

    assert not isinstance(caught.value, TransientError)
    assert emu.calls("GET", "/deployments/checkout") == [403]


# --- missing things ---------------------------------------------------------------------------------


async def test_an_unknown_deployment_is_not_found_with_a_clear_message(
    cluster: KubernetesCluster, target: Target
) -> None:
    with pytest.raises(NotFound) as caught:
        await cluster.set_image(target, NEW, "dep-1:deploy")

    assert str(caught.value) == "Deployment checkout not found in namespace shop of cluster prod-eu"
    assert isinstance(caught.value.__cause__, k8s.exceptions.ApiException)


async def test_an_unknown_container_names_the_containers_there_are(
    emu: Emulator, cluster: KubernetesCluster
) -> None:
    emu.deployment("checkout")

    with pytest.raises(PermanentError, match=r"no container named 'web' \(its containers: app, proxy\)"):
        await cluster.set_image(Target(CLUSTER, NS, "checkout", "web"), NEW, "dep-1:deploy")


async def test_an_unknown_cluster_is_a_config_error(cluster: KubernetesCluster) -> None:
    with pytest.raises(ConfigError, match=r"unknown Kubernetes cluster 'mars' \(configured: prod-eu\)"):
        await cluster.live(Target("mars", NS, "checkout", "app"))


# --- several clusters and kubeconfig contexts ---------------------------------------------------------


@pytest.fixture
def second() -> Iterator[Emulator]:
    emu = Emulator("kubernetes-2").start()
    emu.reset()
    try:
        yield emu
    finally:
        emu.stop()


async def test_one_adapter_drives_two_clusters(emu: Emulator, second: Emulator) -> None:
    emu.deployment("checkout")
    second.deployment("checkout", image=NEW)
    cluster = adapter(("prod-eu", emu), ("prod-us", second))
    eu, us = Target("prod-eu", NS, "checkout", "app"), Target("prod-us", NS, "checkout", "app")
    try:
        await cluster.set_image(eu, "registry.example/checkout:2.0", "dep-1:deploy")

        assert (await settle(cluster, eu)).phase is RolloutPhase.DONE
        assert (await cluster.live(eu)).image == "registry.example/checkout:2.0"
        assert (await cluster.live(us)).image == NEW
        assert second.image("checkout") == NEW
    finally:
        cluster.close()


async def test_kubeconfig_contexts_reach_their_clusters(
    emu: Emulator, second: Emulator, tmp_path: Path
) -> None:
    emu.deployment("checkout")
    second.deployment("checkout", image=NEW)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "eu", "cluster": {"server": emu.url}},
                    {"name": "us", "cluster": {"server": second.url}},
                ],
                "users": [{"name": "bot", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": "eu-ctx", "context": {"cluster": "eu", "user": "bot"}},
                    {"name": "us-ctx", "context": {"cluster": "us", "user": "bot"}},
                ],
                "current-context": "eu-ctx",
            }
        )
    )
    access = {
        "prod-eu": ClusterAccess(context="eu-ctx", kubeconfig=str(kubeconfig)),
        "prod-us": ClusterAccess(context="us-ctx", kubeconfig=str(kubeconfig)),
    }
    cluster = KubernetesCluster(access, timeout_s=2.0, policy=FAST)
    try:
        assert (await cluster.live(Target("prod-eu", NS, "checkout", "app"))).image == OLD
        assert (await cluster.live(Target("prod-us", NS, "checkout", "app"))).image == NEW
    finally:
        cluster.close()


async def test_a_missing_kubeconfig_context_is_a_config_error(tmp_path: Path, target: Target) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "contexts": [], "clusters": []}))
    cluster = KubernetesCluster({CLUSTER: ClusterAccess(context="nowhere", kubeconfig=str(kubeconfig))})
    try:
        with pytest.raises(ConfigError, match="cannot configure access to cluster prod-eu"):
            await cluster.live(target)
    finally:
        cluster.close()


async def test_a_token_from_the_environment_is_sent_and_beats_the_kubeconfigs(
    tmp_path: Path, target: Target
) -> None:
    seen: list[str] = []

    async def deployment(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        containers = [{"name": "app", "image": OLD}]
        return web.json_response(
            {"metadata": {"name": "checkout"}, "spec": {"template": {"spec": {"containers": containers}}}}
        )

    app = web.Application()
    app.router.add_get("/apis/apps/v1/namespaces/shop/deployments/checkout", deployment)
    kubeconfig = tmp_path / "config"
    with ServerThread(app, name="auth-probe") as probe:
        kubeconfig.write_text(
            json.dumps(
                {
                    "clusters": [{"name": "c", "cluster": {"server": probe.url}}],
                    "users": [{"name": "u", "user": {"token": "from-kubeconfig"}}],
                    "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                }
            )
        )
        cluster = KubernetesCluster(
            {
                "by-url": ClusterAccess(server=probe.url, token="from-env-1"),
                "by-context": ClusterAccess(context="ctx", kubeconfig=str(kubeconfig), token="from-env-2"),
                "kubeconfig-only": ClusterAccess(context="ctx", kubeconfig=str(kubeconfig)),
            },
            timeout_s=2.0,
            policy=FAST,
        )
        try:
            for name in ("by-url", "by-context", "kubeconfig-only"):
                assert (await cluster.live(Target(name, NS, "checkout", "app"))).image == OLD
        finally:
            cluster.close()

    assert seen == ["Bearer from-env-1", "Bearer from-env-2", "Bearer from-kubeconfig"]


def test_the_token_stays_out_of_reprs() -> None:
    access = ClusterAccess(server="https://k8s.example:6443", token="s3cr3t-token")

    assert "s3cr3t" not in repr(access)
    assert "s3cr3t" not in access.describe()


async def test_an_untrusted_certificate_is_permanent_not_a_timeout(
    untrusted_tls_url: str, target: Target
) -> None:
    """A certificate the bot does not trust will not fix itself on retry, and is no timeout."""
    tls = KubernetesCluster({CLUSTER: ClusterAccess(server=untrusted_tls_url)}, timeout_s=2.0, policy=FAST)
    try:
        with pytest.raises(PermanentError, match="certificate") as caught:
            await tls.live(target)
    finally:
        tls.close()
    assert not isinstance(caught.value, TransientError)
