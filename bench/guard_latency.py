"""Benchmark: from a breach becoming visible in Prometheus to the rollback being issued.

Runs the real engine (its real due timer, real Prometheus, Jenkins and Kubernetes emulators)
through a rolling deployment; once the deployment is being verified, a 5xx ratio above the guard's
threshold is written to Prometheus and read back (the moment it is visible), and the clock stops
when the engine issues the rollback (the guard's ``RollbackStarted`` notice, sent as the rollback
effect runs, before the cluster is touched). The target: at most interval x (failure_limit + 1) + 1 s.

Settling cases use a ranged check (``max_over_time(...[Ns])``): it waits N s after the change before it
judges, so they are also timed from the change (the window's start) to the rollback, against
settle + interval x (failure_limit + 1) + one interval.

    python bench/guard_latency.py [--repeat N]

Prints one line per case and writes bench/results/guard_latency.json. Needs the prometheus binary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.domain.commands import Deploy  # noqa: E402
from bot.domain.notifications import Notification, RollbackStarted  # noqa: E402
from bot.domain.phases import Phase  # noqa: E402
from bot.sandbox.chat import RecordingChat  # noqa: E402
from bot.sandbox.jenkins import create_jenkins_app  # noqa: E402
from bot.sandbox.kubernetes import create_kubernetes_app  # noqa: E402
from bot.sandbox.server import ServerThread  # noqa: E402
from tests.engine.stack import (  # noqa: E402
    RATIO,
    build_from_files,
    create_k8s_deployment,
    new_run,
    playbook,
    write_stack_files,
)
from tests.support.prometheus import PrometheusServer, find_prometheus  # noqa: E402
from tests.support.promwrite import Series, push  # noqa: E402

CASES = ((1.0, 0, 0), (1.0, 1, 0), (2.0, 1, 0), (1.0, 2, 0), (1.0, 0, 3), (1.0, 1, 3))
"""(interval s, failure_limit, settle s): settle 0 is an instant query, else a ``[settle s]`` range."""


class TimedChat(RecordingChat):
    """Records when each notification arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[float, Notification]] = []

    async def notify(self, notification: Notification) -> None:
        self.times.append((time.monotonic(), notification))
        await super().notify(notification)


def _visible(prom: str, run: str, value: float, timeout: float = 5.0) -> None:
    query = urllib.parse.urlencode({"query": f'max({RATIO}{{service="checkout",run="{run}"}})'})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{prom}/api/v1/query?{query}", timeout=2) as resp:
            result = json.load(resp)["data"]["result"]
        if result and abs(float(result[0]["value"][1]) - value) < 1e-9:
            return
        time.sleep(0.005)
    raise RuntimeError("the breach never became visible")


async def one_case(
    prom: PrometheusServer, interval: float, failure_limit: int, settle: int
) -> tuple[float, float]:
    """(breach visible -> rollback issued, change -> rollback issued), in seconds."""
    run = new_run()
    with (
        ServerThread(create_jenkins_app(time_scale=0.05)) as jenkins,
        ServerThread(create_kubernetes_app(time_scale=0.05)) as k8s,
    ):
        book = playbook(
            "checkout",
            run,
            interval=interval,
            window=interval * 30,
            failure_limit=failure_limit,
            jenkins=False,
        )
        if settle:
            selector = f'service="{{service}}",run="{run}"'
            book["guards"]["http"]["checks"][0]["query"] = (
                f"max(max_over_time({RATIO}{{{selector}}}[{settle}s]))"
            )
        environ = write_stack_files(Path(tempfile.mkdtemp()), prom.url, jenkins, k8s.url, [book])
        create_k8s_deployment(k8s.url, "checkout", "registry.example.com/checkout:1.0.0")
        labels = {"__name__": RATIO, "service": "checkout", "run": run}
        push(prom.url, [Series(labels, [(int(time.time() * 1000), 0.0)])])
        chat = TimedChat()
        runtime = await build_from_files(environ, chat, use_scheduler=True, poll_interval_s=0.2)
        await runtime.engine.start()
        try:
            outcome = await runtime.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
            assert outcome.deployment is not None, outcome.message
            did = outcome.deployment.id
            while (dep := await runtime.store.get_deployment(did)) and dep.phase is not Phase.VERIFYING:
                await asyncio.sleep(0.02)
            changed = time.monotonic()
            # Let the window run clean for a moment so the breach lands at a random point of a tick.
            await asyncio.sleep(interval * 1.37)
            push(prom.url, [Series(labels, [(int(time.time() * 1000), 0.5)])])
            await asyncio.to_thread(_visible, prom.url, run, 0.5)
            visible = time.monotonic()
            await chat.wait_for(
                lambda n: isinstance(n, RollbackStarted), timeout=interval * (failure_limit + 3) + 5
            )
            issued = next(t for t, n in chat.times if isinstance(n, RollbackStarted))
            return issued - visible, issued - changed
        finally:
            await runtime.close()


async def main(repeat: int) -> int:
    binary = find_prometheus()
    if binary is None:
        print("prometheus is not installed (apt-get install -y --no-install-recommends prometheus)")
        return 1
    prom = PrometheusServer(binary).start()
    results = []
    worst_margin = float("inf")
    try:
        for interval, failure_limit, settle in CASES:
            # An instant check judges the first tick after the breach; a settling one not before
            # it has settled, so its bound counts from the change.
            bound = settle + interval * (failure_limit + 1) + (interval if settle else 1.0)
            runs = [await one_case(prom, interval, failure_limit, settle) for _ in range(repeat)]
            samples = [since_change if settle else since_visible for since_visible, since_change in runs]
            worst = max(samples)
            worst_margin = min(worst_margin, bound - worst)
            results.append(
                {
                    "interval_s": interval,
                    "failure_limit": failure_limit,
                    "settle_s": settle,
                    "measured_from": "change" if settle else "breach visible",
                    "bound_s": bound,
                    "samples_s": [round(s, 3) for s in samples],
                    "worst_s": round(worst, 3),
                    "within_bound": worst <= bound,
                }
            )
            start = "change" if settle else "breach visible"
            print(
                f"interval {interval:.1f}s failure_limit {failure_limit} settle {settle}s: "
                f"{start} -> rollback issued worst {worst:.3f}s, mean {sum(samples) / len(samples):.3f}s "
                f"(bound {bound:.1f}s) "
                f"{'OK' if worst <= bound else 'OVER'}",
                flush=True,
            )
    finally:
        prom.stop()
    out = ROOT / "bench" / "results" / "guard_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cases": results, "worst_margin_s": round(worst_margin, 3)}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0 if all(r["within_bound"] for r in results) else 2


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args().repeat)))
