"""Benchmark: complete deployment lifecycles per second, for N = 20, 50 and 100 at once.

Each of N services gets one ``/deploy`` through ``Engine.deploy`` (8 requests in flight at a time)
and goes the whole way: Jenkins build, rolling rollout on Kubernetes, a guard of 3 checks (0.2 s
interval, 0.6 s window, a real Prometheus fed healthy samples), success. The emulators run 50x
faster than real time, so what limits the rate is the engine. The engine runs alone in a child
process (``bench/_support_engine.py``: ``bot.container.build``, its real timer and default poll
interval). Each lifecycle is read back from the store with SQL: from its row's ``created_at``
(the request) to its ``updated_at`` once succeeded.

Figures: lifecycles per second (N / first request to last success; target ≥ 20 /s) and the p50 and
p95 duration of one lifecycle, with the engine process's CPU over the run.

    python bench/throughput.py [--counts 20,50,100] [--profile bench/results/throughput.pstats]

``--profile`` runs the engine child under cProfile (every thread) and prints, per case, its CPU per
lifecycle, SQL statements per lifecycle and where the time went by layer (``_support_profile.py``).

Writes bench/results/throughput-<before|after>.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))

import _support as s
from _support_profile import summary as profile_summary

TARGET_PER_S = 20.0


def one_case(
    prom: Any, count: int, folder: Path, timeout: float, profile: Path | None = None
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    names = [s.service(i) for i in range(count)]
    books = [s.guarded_playbook(n, run, interval=0.2, window=0.6, jenkins=True) for n in names]
    with s.emulated_stack(prom, folder, books, run) as (env, store):
        load_before = s.load()
        with (
            s.engine_process(env, deploy=count, log=folder / "engine.log", profile=profile) as engine,
            s.tail_on_error(engine),
        ):
            engine.wait_for("started", 120)
            cpu = engine.cpu_s()
            began = time.monotonic()
            finished = s.wait_until(
                lambda: store.count(*s.TERMINAL) >= count or not engine.alive(), timeout, step=0.1
            )
            wall = time.monotonic() - began
            cpu = engine.cpu_s() - cpu
            requested = engine.wait_for("requested", 5)  # printed long ago: read from the pipe
            requests_s = requested["wall"] - engine.lines["started"]["wall"]
        rows = store.lifecycles()
    done = [(created, updated) for _, phase, created, updated in rows if phase == "succeeded"]
    durations = [updated - created for created, updated in done]
    span = (max(u for _, u in done) - min(c for c, _ in done)) if done else float("nan")
    return {
        "lifecycles": count,
        "all_finished": finished,
        "succeeded": len(done),
        "phases": store.phases(),
        "per_s": round(len(done) / span, 2) if done else 0.0,
        "span_s": round(span, 2),
        "p50_s": round(s.percentile(durations, 0.5), 2),
        "p95_s": round(s.percentile(durations, 0.95), 2),
        "engine_cpu_s": round(cpu, 2),
        "engine_cpu_share": round(cpu / wall, 2),
        "requests_s": round(requests_s, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in s.load()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--counts", default="20,50,100", help="lifecycles at once (comma-separated)")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds a case may take")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the engine under cProfile; each case's profile goes to PROFILE with -N<count> in its name",
    )
    args = parser.parse_args()
    s.exit_on_sigterm()
    doc: dict[str, Any] = {"machine": s.machine(), "target_per_s": TARGET_PER_S, "cases": []}
    print(f"tree under test: {doc['machine']['tree']}; load {doc['machine']['load_at_start']}")
    prom = s.start_prometheus()
    try:
        for count in (int(c) for c in args.counts.split(",")):
            out = None
            if args.profile is not None:
                out = args.profile.with_name(f"{args.profile.stem}-N{count}{args.profile.suffix}").resolve()
            with tempfile.TemporaryDirectory(prefix="shipthread-bench-") as tmp:
                case = one_case(prom, count, Path(tmp), args.timeout, out)
            doc["cases"].append(case)
            print(
                f"N = {count:3d}: {case['per_s']:.2f} lifecycles/s (target ≥ {TARGET_PER_S:.0f} /s), "
                f"p50 {case['p50_s']:.2f}s, p95 {case['p95_s']:.2f}s, {case['succeeded']}/{count} succeeded"
                f"{'' if case['all_finished'] else ' (TIMED OUT)'}; engine CPU {case['engine_cpu_s']}s "
                f"({case['engine_cpu_share']:.0%} of a core); load {case['load_before'][0]} -> "
                f"{case['load_after'][0]}; all requested after {case['requests_s']:.2f}s",
                flush=True,
            )
            if out is not None and out.exists():
                print(profile_summary(out, case["succeeded"]), flush=True)
    finally:
        prom.stop()
    print(f"wrote {s.write_results('throughput', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
