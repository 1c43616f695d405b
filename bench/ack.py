"""Benchmark: how fast ``shipthread serve`` acks a burst of signed ``/deploy`` requests.

For 50 and for 200 concurrent signed ``/deploy`` slash commands it prints the ack latency (p50,
p99) of a real ``shipthread serve`` process (its engine, store, notifier and emulated Jenkins,
Kubernetes and Slack behind it, every request a real deployment request) next to a bare Bolt
``AsyncApp`` whose only listener calls ``ack()``, both served by aiohttp in their own process and
measured in the same run, and the ratio. Targets: Shipthread's p99 within 1.5× of the bare app's
and under 300 ms. Results go to ``bench/results/ack.json``.

Latency is measured by the client, from just before the POST to the last byte of the answer; the
bodies (with trigger ids and response URLs the Slack emulator minted) are built beforehand, and each
app gets a warm-up burst first. ``--rounds`` repeats each burst and keeps every sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.sandbox.jenkins import create_jenkins_app, parameterized_job_xml  # noqa: E402
from bot.sandbox.jenkins import emulator_of as jenkins_of  # noqa: E402
from bot.sandbox.kubernetes import create_kubernetes_app  # noqa: E402
from bot.sandbox.server import ServerThread  # noqa: E402
from bot.sandbox.slack import SlackEmulator, create_slack_app, emulator_of  # noqa: E402
from bot.store.migrate import upgrade  # noqa: E402

TOKEN = "xoxb-sandbox"
SECRET = "bench-signing-secret-0123456789abcdef"
SERVICES = 20
SETTLE_S = 5.0
"""Pause after each burst, for the background work it started to finish."""

BARE_APP = textwrap.dedent(
    """
    import asyncio, os, sys
    from aiohttp import web
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/deploy")
    async def deploy(ack):
        await ack()

    async def main():
        runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"serving on 127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    port: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"serving on [^:]+:(\d+)", line)
            if found and not port:
                port.append(int(found[1]))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60) or not port:
        process.kill()
        raise SystemExit(f"{argv[:4]} did not start")
    return process, port[0]


def bodies(emulator: SlackEmulator, base_url: str, count: int, offset: int) -> list[str]:
    out = []
    for i in range(count):
        n = offset + i
        fields = {
            "token": "sandbox-verification-token",
            "team_id": "T0SANDBOX",
            "team_domain": "sandbox",
            "channel_id": "C0DEPLOYS",
            "channel_name": "deploys",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/deploy",
            "text": f"svc{n % SERVICES} 1.{n}.0",
            "api_app_id": "A0SHIPTHREAD",
            "is_enterprise_install": "false",
            "response_url": emulator.issue_response_url(base_url, channel_id="C0DEPLOYS", user_id="U0ALICE"),
            "trigger_id": emulator.issue_trigger("U0ALICE"),
        }
        out.append(urlencode(fields))
    return out


async def burst(url: str, payloads: list[str]) -> list[float]:
    verifier = SignatureVerifier(SECRET)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(body: str) -> float:
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": str(verifier.generate_signature(timestamp=stamp, body=body)),
            }
            started = time.perf_counter()
            async with session.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            return time.perf_counter() - started

        return list(await asyncio.gather(*(one(b) for b in payloads)))


def stack_files(
    folder: Path, jenkins: ServerThread, kubernetes: ServerThread, slack: ServerThread
) -> dict[str, str]:
    (folder / "playbooks").mkdir(parents=True, exist_ok=True)
    from kubernetes import client as k8s

    api = k8s.ApiClient(k8s.Configuration(host=kubernetes.url))
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": "shop"}})
    for i in range(SERVICES):
        name = f"svc{i}"
        book = {
            "service": name,
            "jenkins": {"job": f"{name}-build", "parameters": {"VERSION": "{version}"}},
            "kubernetes": {
                "cluster": "main",
                "namespace": "shop",
                "deployment": name,
                "container": "app",
                "image": f"registry.example.com/{name}:{{version}}",
            },
            "environments": {
                "production": {"channel": "C0DEPLOYS", "approvals": [{"group": "sre", "count": 1}]}
            },
        }
        (folder / "playbooks" / f"{name}.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
        jenkins_of(jenkins.app).create_job(
            f"{name}-build", parameterized_job_xml("SHIPTHREAD_KEY", "VERSION")
        )
        labels = {"app": name}
        k8s.AppsV1Api(api).create_namespaced_deployment(
            "shop",
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [{"name": "app", "image": f"registry.example.com/{name}:1.0.0"}]
                        },
                    },
                },
            },
        )
    api.close()
    (folder / "shipthread.yaml").write_text(
        yaml.safe_dump(
            {
                "clusters": {"main": {"server": kubernetes.url}},
                "approver_groups": {"sre": ["U0BOB", "U0CAROL"]},
            }
        )
    )
    return {
        "SHIPTHREAD_CONFIG": str(folder / "shipthread.yaml"),
        "SHIPTHREAD_PLAYBOOKS": str(folder / "playbooks"),
        "SHIPTHREAD_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'shipthread.db'}",
        "JENKINS_URL": jenkins.url,
        "JENKINS_USER": "shipthread",
        "JENKINS_TOKEN": "sandbox-token",
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{slack.url}/api/",
    }


async def measure(counts: list[int], rounds: int, out: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with (
        ServerThread(create_slack_app(rate_limits=False), name="slack") as slack,
        ServerThread(create_jenkins_app(time_scale=0.05), name="jenkins") as jenkins,
        ServerThread(create_kubernetes_app(time_scale=0.05), name="kubernetes") as kubernetes,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        env = {**os.environ, **stack_files(folder, jenkins, kubernetes, slack)}
        await upgrade(env["SHIPTHREAD_DATABASE_URL"])
        emulator = emulator_of(slack.app)
        apps = {
            "shipthread": start(
                [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0"], env, folder
            ),
            "bare bolt": start([sys.executable, "-c", BARE_APP], env, folder),
        }
        offset = 0
        try:
            for _, port in apps.values():  # warm-up: imports, first auth.test, connection pools
                await burst(f"http://127.0.0.1:{port}/slack/events", bodies(emulator, slack.url, 20, offset))
                offset += 20
            await asyncio.sleep(2)
            for count in counts:
                row: dict[str, Any] = {"concurrent": count}
                samples: dict[str, list[float]] = {name: [] for name in apps}
                for round_no in range(rounds):
                    # Alternate who goes first: the work a burst leaves behind in Shipthread (real
                    # deployments) shares the machine's cores with whatever is measured next.
                    order = list(apps.items()) if round_no % 2 == 0 else list(reversed(apps.items()))
                    for name, (_, port) in order:
                        url = f"http://127.0.0.1:{port}/slack/events"
                        samples[name] += await burst(url, bodies(emulator, slack.url, count, offset))
                        offset += count
                        await asyncio.sleep(SETTLE_S)
                for name, taken in samples.items():
                    row[name] = {
                        "p50_ms": round(statistics.median(taken) * 1000, 1),
                        "p99_ms": round(percentile(taken, 99) * 1000, 1),
                        "samples": len(taken),
                    }
                row["p99_ratio"] = round(
                    row["shipthread"]["p99_ms"] / max(row["bare bolt"]["p99_ms"], 0.1), 2
                )
                row["target_met"] = row["p99_ratio"] <= 1.5 and row["shipthread"]["p99_ms"] < 300
                results.append(row)
                print(
                    f"{count:4d} concurrent: shipthread p50 {row['shipthread']['p50_ms']:6.1f} ms "
                    f"p99 {row['shipthread']['p99_ms']:6.1f} ms | "
                    f"bare bolt p50 {row['bare bolt']['p50_ms']:6.1f} ms "
                    f"p99 {row['bare bolt']['p99_ms']:6.1f} ms | p99 ratio {row['p99_ratio']:.2f} "
                    f"({'met' if row['target_met'] else 'MISSED'}: ≤ 1.5× and < 300 ms)",
                    flush=True,
                )
        finally:
            for process, _ in apps.values():
                process.send_signal(signal.SIGTERM)
            for process, _ in apps.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    out.write_text(json.dumps(results, indent=2) + "\n")  # noqa: ASYNC240 -- once, at the end
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--counts", default="50,200", help="concurrent requests per burst (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per count and app")
    args = parser.parse_args()
    results_dir = Path(__file__).resolve().parent / "results"
    results_dir.mkdir(exist_ok=True)
    asyncio.run(measure([int(c) for c in args.counts.split(",")], args.rounds, results_dir / "ack.json"))


if __name__ == "__main__":
    main()
