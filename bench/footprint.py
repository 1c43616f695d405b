"""Benchmark: what an idle ``shipthread serve`` costs: its memory, and how long it takes to be ready.

Starts the real ``python -m bot serve`` (HTTP mode, 20 playbooks, a migrated SQLite database, the
Slack, Jenkins and Kubernetes emulators in this process's threads) ``--starts`` times. Cold start is
from spawning the process until ``GET /readyz`` first answers 200 (polled every 10 ms; ready means
the engine started, the database is at head, Slack's ``auth.test`` passed and the channels exist),
target ≤ 3 s. Idle RSS is read from ``/proc/<pid>/status`` after ``--idle`` seconds of doing
nothing once ready, target ≤ 150 MB (VmHWM, the peak, beside it).

    python bench/footprint.py [--starts 3] [--idle 15]

Writes bench/results/footprint-<before|after>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))

import _support as s

RSS_TARGET_MB = 150.0
START_TARGET_S = 3.0
SERVICES = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def one_start(env: dict[str, str], folder: Path, idle_s: float) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(folder / "serve.log", "ab") as log:
        spawned = time.monotonic()
        proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=folder, stdout=log, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}/readyz"
            while not ready(url):
                if proc.poll() is not None or time.monotonic() - spawned > 60:
                    tail = (folder / "serve.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"serve never became ready (exit {proc.poll()}):\n{tail}")
                time.sleep(0.01)
            cold = time.monotonic() - spawned
            cpu = s.cpu_seconds(proc.pid)
            rss_ready = status_mb(proc.pid, "VmRSS")
            time.sleep(idle_s)
            return {
                "cold_start_s": round(cold, 3),
                "cpu_to_ready_s": round(cpu, 2),
                "rss_at_ready_mb": round(rss_ready, 1),
                "idle_rss_mb": round(status_mb(proc.pid, "VmRSS"), 1),
                "peak_rss_mb": round(status_mb(proc.pid, "VmHWM"), 1),
                "load1": round(s.load()[0], 2),
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def stack(folder: Path, slack: Any, jenkins: Any, kubernetes: Any) -> dict[str, str]:
    books = [
        s.guarded_playbook(s.service(i), "footprint", interval=10.0, window=300.0, jenkins=True)
        for i in range(SERVICES)
    ]
    env = s.write_stack(
        folder, books, prometheus_url="http://127.0.0.1:9", jenkins=jenkins, kubernetes_url=kubernetes.url
    )
    env.update(
        SLACK_BOT_TOKEN="xoxb-sandbox",
        SLACK_SIGNING_SECRET="bench-signing-secret-0123456789abcdef",
        SLACK_API_URL=f"{slack.url}/api/",
    )
    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade", "--url", env["SHIPTHREAD_DATABASE_URL"]],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--starts", type=int, default=3, help="cold starts to measure")
    parser.add_argument("--idle", type=float, default=15.0, help="seconds idle before reading RSS")
    args = parser.parse_args()
    s.exit_on_sigterm()
    doc: dict[str, Any] = {
        "machine": s.machine(),
        "targets": {"idle_rss_mb": RSS_TARGET_MB, "cold_start_s": START_TARGET_S},
    }
    print(f"tree under test: {doc['machine']['tree']}; load {doc['machine']['load_at_start']}")
    create_slack_app = s.first("bot.sandbox.slack:create_slack_app")
    with (
        s.server_thread(create_slack_app(rate_limits=False), "slack") as slack,
        s.server_thread(s.jenkins_app(0.02), "jenkins") as jenkins,
        s.server_thread(s.kubernetes_app(0.02), "kubernetes") as kubernetes,
        tempfile.TemporaryDirectory(prefix="shipthread-bench-") as tmp,
    ):
        env = stack(Path(tmp), slack, jenkins, kubernetes)
        runs = [one_start(env, Path(tmp), args.idle) for _ in range(args.starts)]
    doc["runs"] = runs
    colds = [r["cold_start_s"] for r in runs]
    idle = [r["idle_rss_mb"] for r in runs]
    cpu = [r["cpu_to_ready_s"] for r in runs]
    print(
        f"cold start to /readyz 200: median {statistics.median(colds):.2f}s, worst {max(colds):.2f}s "
        f"(target ≤ {START_TARGET_S:.0f} s; CPU to ready median {statistics.median(cpu):.2f}s); "
        f"idle RSS median {statistics.median(idle):.0f} MB, worst "
        f"{max(idle):.0f} MB (target ≤ {RSS_TARGET_MB:.0f} MB); "
        f"peak {max(r['peak_rss_mb'] for r in runs):.0f} MB; "
        f"load {[r['load1'] for r in runs]}"
    )
    print(json.dumps(runs))
    print(f"wrote {s.write_results('footprint', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
