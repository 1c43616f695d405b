"""Benchmark: how fast ``shipthread serve`` acks a burst of signed ``/deploy`` requests.

For 50 and for 200 concurrent signed ``/deploy`` slash commands it prints the ack latency (p50,
p99) of a real ``shipthread serve`` process (its engine, store, notifier and emulated Jenkins,
Kubernetes and Slack behind it, every request a real deployment request) next to a bare Bolt
``AsyncApp`` whose only listener calls ``ack()``, both served by aiohttp in their own process and
measured in the same run, and the ratio. Targets: Shipthread's p99 within 1.5× of the bare app's
and under 300 ms. Results go to ``bench/results/ack.json``.

It also prints how late Shipthread's event loop ran its callbacks (``shipthread_event_loop_lag_seconds``
on its ``/metrics``, read before and after each burst): the largest lag during start-up, during the
bursts (the acks) and while the work the bursts started ran, next to the target of none over 50 ms.
A lag is known to the histogram's bucket, so it is printed as "under <bucket bound>".

Latency is measured by the client, from just before the POST to the last byte of the answer; the
bodies (with trigger ids and response URLs the Slack emulator minted) are built beforehand, and each
app gets a warm-up burst first. ``--rounds`` repeats each burst and keeps every sample; each burst
waits until the work the previous one left (Shipthread's) is done (``settle``). The
emulators run in a process of their own (``--emulators``, driven over its stdin and stdout): in
the measuring process, the Slack emulator answering Shipthread's own posts during a burst would
take the GIL from the client and bill that to Shipthread, which the bare app never pays.

``--profile``, ``--loop-debug`` and ``--gc-timing`` start Shipthread through ``bench/ack_probe.py``
(cProfile during the bursts, asyncio's slow-callback warnings, the collector's pauses) and print
what they saw by phase: start, warm-up, burst, work.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _support import create_workloads, kubernetes_target, stack_environ  # noqa: E402 -- bench/ is on sys.path: this runs as a script
from ack_probe import ProbeLines  # noqa: E402

PROBE = Path(__file__).resolve().parent / "ack_probe.py"

from bot.sandbox.jenkins import create_jenkins_app, parameterized_job_xml  # noqa: E402
from bot.sandbox.jenkins import emulator_of as jenkins_of  # noqa: E402
from bot.sandbox.kubernetes import create_kubernetes_app  # noqa: E402
from bot.sandbox.server import ServerThread  # noqa: E402
from bot.sandbox.slack import SlackEmulator, create_slack_app, emulator_of  # noqa: E402
from bot.serve import LISTEN_BACKLOG  # noqa: E402
from bot.store.migrate import upgrade  # noqa: E402

TOKEN = "xoxb-sandbox"
SECRET = "bench-signing-secret-0123456789abcdef"
SERVICES = 20
SETTLE_S = 5.0
"""Pause after the warm-up, for the background work it started to finish."""
QUIET_CPU = 0.05
"""A process is done with a burst's work when it uses less than this share of a core..."""
QUIET_FOR_S = 0.5
"""... for this long (the lag monitor and timers cost ~1 %)."""
SETTLE_MIN_S, SETTLE_MAX_S = 1.0, 60.0

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
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=int(os.environ["BARE_BACKLOG"]))
        await site.start()
        print(f"serving on 127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


LAG = "shipthread_event_loop_lag_seconds"
LAG_CPU = "shipthread_event_loop_lag_cpu_seconds"
"""The part of each lag the loop's thread was on the CPU: what Shipthread's own callbacks held."""
LAG_TARGET_S = 0.05


async def lag_buckets(port: int, name: str = LAG) -> dict[float, float]:
    """One of Shipthread's loop-lag histograms: bucket bound (s) → cumulative count."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    found: dict[float, float] = {}
    for line in text.splitlines():
        hit = re.match(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', line)
        if hit:
            found[float(hit[1])] = float(hit[2])
    return found


async def lag_reads_now(port: int) -> dict[str, dict[float, float]]:
    return {LAG: await lag_buckets(port, LAG), LAG_CPU: await lag_buckets(port, LAG_CPU)}


def lag_between(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """The lags measured between two reads: the bucket bound of the largest, how many over the target."""
    bounds = sorted(after)
    per_bucket = {b: after[b] - before.get(b, 0.0) for b in bounds}  # cumulative deltas
    largest = next((b for b in bounds if per_bucket[b] == per_bucket[bounds[-1]]), bounds[-1])
    over = per_bucket[bounds[-1]] - per_bucket.get(LAG_TARGET_S, 0.0)
    return {"max_under_ms": largest * 1000, "over_50ms": int(over), "samples": int(per_bucket[bounds[-1]])}


def describe_lag(lag: dict[str, Any]) -> str:
    bound = "∞" if lag["max_under_ms"] == float("inf") else f"{lag['max_under_ms']:g}"
    return f"max under {bound} ms, {lag['over_50ms']} of {lag['samples']} over 50 ms"


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used: what a burst cost, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def settle(pids: list[int]) -> float:
    """Wait until the burst's work is done, i.e. ``pids`` (the app, the emulators) are quiet; seconds.

    Like with like: each burst meets an idle app on an idle machine. A fixed pause is not enough:
    the work 200 ``/deploy`` leave behind (the engine's answers, Slack posts through the emulator)
    can run longer than it, and then whichever burst comes next (the bare app's or Shipthread's)
    shares the cores with it — which measured that work, not the ack.
    """
    started = time.monotonic()
    quiet_since: float | None = None
    step = QUIET_FOR_S / 2
    while time.monotonic() - started < SETTLE_MAX_S:
        used = sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(step)
        busy = (sum(cpu_seconds(pid) for pid in pids) - used) / step
        now = time.monotonic()
        quiet_since = (quiet_since or now - step) if busy < QUIET_CPU * len(pids) else None
        if quiet_since is not None and now - quiet_since >= QUIET_FOR_S and now - started >= SETTLE_MIN_S:
            break
    return round(time.monotonic() - started, 2)


def spread(taken: list[float]) -> dict[str, float]:
    """One burst's latencies, in ms: the first answer, the median, p99 and the last."""
    return {
        "first_ms": round(min(taken) * 1000, 1),
        "p50_ms": round(statistics.median(taken) * 1000, 1),
        "p99_ms": round(percentile(taken, 99) * 1000, 1),
        "last_ms": round(max(taken) * 1000, 1),
    }


def start(
    argv: list[str], env: dict[str, str], cwd: Path, log: Path | None = None, probe: ProbeLines | None = None
) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    port: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        kept = log.open("w") if log else None  # open as long as the process writes
        for line in process.stderr:
            if kept:
                kept.write(line)
                kept.flush()
            if probe is not None:
                probe.feed(line)
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
    """Each request's latency as the client saw it, with the client's own collector held off.

    The client is a Python process too: a generation-2 collection over its heap (the minted bodies,
    the samples of earlier rounds) once stopped it for 110 ms in the middle of a burst, and every
    request in flight then looked 110 ms slower, whichever app was being measured (it was the
    tail of the round-3 bursts). So the heap is collected before a burst and the collector is off
    while it runs: the figures are the server's.
    """
    gc.collect()
    gc.disable()
    try:
        return await _timed(url, payloads)
    finally:
        gc.enable()


async def _timed(url: str, payloads: list[str]) -> list[float]:
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
    names = [f"svc{i}" for i in range(SERVICES)]
    for name in names:
        book = {
            "service": name,
            "jenkins": {"job": f"{name}-build", "parameters": {"VERSION": "{version}"}},
            "kubernetes": kubernetes_target(name),
            "environments": {
                "production": {"channel": "C0DEPLOYS", "approvals": [{"group": "sre", "count": 1}]}
            },
        }
        (folder / "playbooks" / f"{name}.yaml").write_text(yaml.safe_dump(book, sort_keys=False))
        jenkins_of(jenkins.app).create_job(
            f"{name}-build", parameterized_job_xml("SHIPTHREAD_KEY", "VERSION")
        )
    create_workloads(kubernetes.url, names, version="1.0.0")
    (folder / "shipthread.yaml").write_text(
        yaml.safe_dump(
            {
                "clusters": {"main": {"server": kubernetes.url}},
                "approver_groups": {"sre": ["U0BOB", "U0CAROL"]},
            }
        )
    )
    return {
        **stack_environ(folder, jenkins_url=jenkins.url, prometheus_url="http://127.0.0.1:9"),
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{slack.url}/api/",
    }


def emulators_main(folder: Path) -> None:
    """``--emulators FOLDER``: serve the emulators, write the stack's files, then mint request bodies.

    Prints the stack's environment as one JSON line, then answers each ``[count, offset]`` line on
    stdin with the JSON list of that many signed-to-be ``/deploy`` bodies; stops at end of input.
    """
    with (
        ServerThread(create_slack_app(rate_limits=False), name="slack") as slack,
        ServerThread(create_jenkins_app(time_scale=0.05), name="jenkins") as jenkins,
        ServerThread(create_kubernetes_app(time_scale=0.05), name="kubernetes") as kubernetes,
    ):
        print(json.dumps(stack_files(folder, jenkins, kubernetes, slack)), flush=True)
        emulator = emulator_of(slack.app)
        for line in sys.stdin:
            count, offset = json.loads(line)
            print(json.dumps(bodies(emulator, slack.url, count, offset)), flush=True)


class Emulators:
    """The emulators' process, seen from the measuring one."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--emulators", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.env: dict[str, str] = json.loads(self._line())

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the emulators did not start")
        return line

    def bodies(self, count: int, offset: int) -> list[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps([count, offset]) + "\n")
        self.process.stdin.flush()
        minted: list[str] = json.loads(self._line())
        return minted

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass(frozen=True)
class Instruments:
    """What ``bench/ack_probe.py`` attaches to the serve process (nothing: plain ``python -m bot``)."""

    profile: Path | None = None
    """cProfile of the loop's thread during the bursts of ``profile_count``, written here."""
    profile_count: int = 200
    loop_debug: bool = False
    """asyncio debug mode, warning about every callback over 50 ms."""
    gc_timing: bool = False

    def argv(self) -> list[str]:
        flags = [*(["--profile", str(self.profile)] if self.profile else [])]
        flags += [*(["--loop-debug", str(LAG_TARGET_S)] if self.loop_debug else [])]
        flags += [*(["--gc-timing"] if self.gc_timing else [])]
        serve = ["serve", "--host", "127.0.0.1", "--port", "0"]
        return (
            [sys.executable, str(PROBE), *flags, *serve] if flags else [sys.executable, "-m", "bot", *serve]
        )

    def profiling(self, count: int) -> bool:
        return self.profile is not None and count == self.profile_count


def describe_probe(probe: ProbeLines, instruments: Instruments) -> list[str]:
    """What asyncio's debug mode and the collector's timing saw, by phase (empty: neither ran)."""
    lines = []
    for phase in ("start", "warm-up", "burst", "work"):
        if instruments.loop_debug:
            slow = sorted(probe.slow.get(phase, []), reverse=True)
            worst = "; ".join(f"{took * 1000:.0f} ms {name}" for took, name in slow[:3])
            lines.append(
                f"callbacks over 50 ms (asyncio debug mode) during {phase}: {len(slow)}"
                + (f" — {worst}" if worst else "")
                + " (target: none)"
            )
            lines += [
                f"  {ms} ms: {where}" for ms, where in sorted(probe.steps.get(phase, []), reverse=True)[:5]
            ]
        if instruments.gc_timing:
            pauses = probe.pauses.get(phase, [])
            longest = max(pauses, key=lambda p: p[1], default=None)
            by_gen = {g: sum(ms for gen, ms in pauses if gen == g) for g in (0, 1, 2)}
            lines.append(
                f"collections during {phase} (gen 1-2, and gen 0 over 1 ms): {len(pauses)}, "
                f"{sum(by_gen.values()):.0f} ms in all (gen 0/1/2: "
                + "/".join(f"{by_gen[g]:.0f}" for g in (0, 1, 2))
                + " ms)"
                + (f", longest {longest[1]:.1f} ms (gen {longest[0]})" if longest else "")
            )
    return lines


async def measure(
    counts: list[int],
    rounds: int,
    out: Path,
    serve_log: Path | None = None,
    instruments: Instruments = Instruments(),
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    probe = ProbeLines()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        emulators = Emulators(folder)
        env = {**os.environ, **emulators.env}
        await upgrade(env["SHIPTHREAD_DATABASE_URL"])
        apps = {
            "shipthread": start(instruments.argv(), env, folder, serve_log, probe),
            # The same listen backlog as ``shipthread serve``: the two differ in the app, not the socket.
            "bare bolt": start(
                [sys.executable, "-c", BARE_APP], {**env, "BARE_BACKLOG": str(LISTEN_BACKLOG)}, folder
            ),
        }
        offset = 0
        ship_port = apps["shipthread"][1]
        try:
            start_lag = lag_between({}, await lag_buckets(ship_port))
            start_cpu = lag_between({}, await lag_buckets(ship_port, LAG_CPU))
            print(
                f"loop lag during start: {describe_lag(start_lag)}; on the CPU: {describe_lag(start_cpu)} "
                "(target: none over 50 ms)",
                flush=True,
            )
            results.append({"loop_lag_start": start_lag, "loop_lag_cpu_start": start_cpu})
            probe.phase("warm-up")
            for _, port in apps.values():  # warm-up: imports, first auth.test, connection pools
                await burst(f"http://127.0.0.1:{port}/slack/events", emulators.bodies(20, offset))
                offset += 20
            # As after every burst: the warm-up's deployments get their work done before measuring.
            await asyncio.sleep(SETTLE_S)
            for count in counts:
                row: dict[str, Any] = {"concurrent": count}
                samples: dict[str, list[float]] = {name: [] for name in apps}
                per_round: dict[str, list[dict[str, float]]] = {name: [] for name in apps}
                settled: dict[str, list[float]] = {name: [] for name in apps}
                cpu: dict[str, float] = dict.fromkeys(apps, 0.0)
                lag_reads: dict[str, list[dict[str, dict[float, float]]]] = {"burst": [], "work": []}
                for round_no in range(rounds):
                    # Alternate who goes first: the work a burst leaves behind in Shipthread (real
                    # deployments) shares the machine's cores with whatever is measured next.
                    order = list(apps.items()) if round_no % 2 == 0 else list(reversed(apps.items()))
                    for name, (process, port) in order:
                        url = f"http://127.0.0.1:{port}/slack/events"
                        payloads = emulators.bodies(count, offset)
                        before = await lag_reads_now(ship_port) if name == "shipthread" else {}
                        profiled = name == "shipthread" and instruments.profiling(count)
                        if name == "shipthread":
                            probe.phase("burst")
                        if profiled:
                            process.send_signal(signal.SIGUSR1)
                        used = cpu_seconds(process.pid)
                        taken = await burst(url, payloads)
                        samples[name] += taken
                        per_round[name].append(spread(taken))
                        cpu[name] += cpu_seconds(process.pid) - used
                        if profiled:
                            process.send_signal(signal.SIGUSR2)
                        if name == "shipthread":
                            probe.phase("work")
                        offset += count
                        if name == "shipthread":
                            acked = await lag_reads_now(ship_port)
                            lag_reads["burst"] += [before, acked]
                        settled[name].append(await settle([process.pid, emulators.process.pid]))
                        if name == "shipthread":
                            lag_reads["work"] += [acked, await lag_reads_now(ship_port)]
                for name, taken in samples.items():
                    row[name] = {
                        "p50_ms": round(statistics.median(taken) * 1000, 1),
                        "p99_ms": round(percentile(taken, 99) * 1000, 1),
                        "samples": len(taken),
                        # The server's CPU per request during the bursts (the machine's load aside).
                        "cpu_ms_per_request": round(cpu[name] * 1000 / len(taken), 2),
                        "rounds": per_round[name],
                        "settle_s": settled[name],
                    }
                row["p99_ratio"] = round(
                    row["shipthread"]["p99_ms"] / max(row["bare bolt"]["p99_ms"], 0.1), 2
                )
                row["target_met"] = row["p99_ratio"] <= 1.5 and row["shipthread"]["p99_ms"] < 300
                for phase, reads in lag_reads.items():
                    for kind, metric in (("", LAG), ("cpu_", LAG_CPU)):
                        pairs = zip(reads[::2], reads[1::2], strict=True)
                        worst = [lag_between(a[metric], b[metric]) for a, b in pairs]
                        row[f"loop_lag_{kind}{phase}"] = {
                            "max_under_ms": max(w["max_under_ms"] for w in worst),
                            "over_50ms": sum(w["over_50ms"] for w in worst),
                            "samples": sum(w["samples"] for w in worst),
                        }
                results.append(row)
                print(
                    f"{count:4d} concurrent: shipthread p50 {row['shipthread']['p50_ms']:6.1f} ms "
                    f"p99 {row['shipthread']['p99_ms']:6.1f} ms | "
                    f"bare bolt p50 {row['bare bolt']['p50_ms']:6.1f} ms "
                    f"p99 {row['bare bolt']['p99_ms']:6.1f} ms | p99 ratio {row['p99_ratio']:.2f} "
                    f"({'met' if row['target_met'] else 'MISSED'}: ≤ 1.5× and < 300 ms)",
                    flush=True,
                )
                print(
                    f"{count:4d} concurrent: server CPU per request during the bursts: shipthread "
                    f"{row['shipthread']['cpu_ms_per_request']:.2f} ms, bare bolt "
                    f"{row['bare bolt']['cpu_ms_per_request']:.2f} ms; Shipthread's work after each burst "
                    f"done in {', '.join(f'{t:g}' for t in row['shipthread']['settle_s'])} s "
                    "(each burst waits for it)",
                    flush=True,
                )
                print(
                    f"{count:4d} concurrent: loop lag during the bursts: "
                    f"{describe_lag(row['loop_lag_burst'])}; while their work ran: "
                    f"{describe_lag(row['loop_lag_work'])} (target: none over 50 ms)",
                    flush=True,
                )
                print(
                    f"{count:4d} concurrent: of which on the CPU (Shipthread's own callbacks) during the "
                    f"bursts: {describe_lag(row['loop_lag_cpu_burst'])}; while their work ran: "
                    f"{describe_lag(row['loop_lag_cpu_work'])} (target: none over 50 ms)",
                    flush=True,
                )
            for line in describe_probe(probe, instruments):
                print(line, flush=True)
            results.append(
                {"slow_callbacks": probe.slow, "slow_steps": probe.steps, "gc_pauses": probe.pauses}
            )
        finally:
            for process, _ in apps.values():
                process.send_signal(signal.SIGTERM)
            for process, _ in apps.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
            emulators.close()
    out.write_text(json.dumps(results, indent=2) + "\n")  # noqa: ASYNC240 -- once, at the end
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--counts", default="50,200", help="concurrent requests per burst (comma-separated)")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per count and app")
    parser.add_argument("--serve-log", type=Path, help="keep shipthread's log lines in this file")
    parser.add_argument(
        "--profile", type=Path, help="cProfile shipthread's event loop during the bursts, pstats to this file"
    )
    parser.add_argument("--profile-count", type=int, default=200, help="the burst size that --profile covers")
    parser.add_argument(
        "--loop-debug",
        action="store_true",
        help="asyncio debug mode in shipthread: count callbacks over 50 ms",
    )
    parser.add_argument("--gc-timing", action="store_true", help="time shipthread's garbage collections")
    parser.add_argument("--emulators", type=Path, help=argparse.SUPPRESS)  # the emulators' own process
    args = parser.parse_args()
    if args.emulators:
        emulators_main(args.emulators)
        return
    results_dir = Path(__file__).resolve().parent / "results"
    results_dir.mkdir(exist_ok=True)
    counts = [int(c) for c in args.counts.split(",")]
    instruments = Instruments(args.profile, args.profile_count, args.loop_debug, args.gc_timing)
    asyncio.run(measure(counts, args.rounds, results_dir / "ack.json", args.serve_log, instruments))


if __name__ == "__main__":
    main()
