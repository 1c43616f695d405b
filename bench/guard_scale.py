"""Benchmark: the QoS guard with 10, 100 and 1,000 deployments verifying at once.

Each deployment is its own service deploying its own version, guarded by 3 checks every 10 s over a
long window (so none finishes while measured), against a real Prometheus fed healthy samples by
remote write. The engine runs alone in a child process (``bench/_support_engine.py``, built by
``bot.container``, real timer); every deployment is requested through ``Engine.deploy`` (no
approvals, no Jenkins, the Kubernetes emulator 50x faster) and the bench waits until all are
verifying. Then, black-box:

- steady state over ``--intervals`` intervals: guard ticks stored per interval (the deployments' tick
  counters, read with SQL) against the number of deployments (target: all of them), the engine
  process's CPU as a share of one core (target ≤ 15 %), and Prometheus query requests per interval
  (Prometheus's own ``prometheus_http_requests_total{handler=~"/api/v1/query.*"}``; target: the
  number of query shapes, 3);
- one guard tick with every deployment due: the engine is stopped (SIGSTOP) for an interval and a
  second so every deployment falls due, then resumed; wall is from SIGCONT until every deployment's
  tick is stored, CPU the process's over that span (targets ≤ 1 s CPU, ≤ 0.5 x interval wall). It is
  whatever the engine does when all is due at once, including any other timer that fell due.

    python bench/guard_scale.py [--counts 10,100,1000] [--intervals 3]

Prints one line per figure beside its target; writes bench/results/guard_scale-<before|after>.json.
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
import _support_lag as lag

INTERVAL_S = 10.0
WINDOW_S = 3600.0
SHAPES = len(s.METRICS)
STALL_S = 10.0
LAG_TAIL_S = 1.0
"""How long after the all-due tick's last stored tick its loop-lag phase goes on (the round's end)."""
SEEDED = 20
"""Deployments requested through the engine when the rest are copies (``--clone-above``)."""


def seed(engine: s.EngineProcess, store: s.StoreReader, count: int, timeout: float) -> float:
    """Wait until all ``count`` deployments are verifying; seconds it took from the first request.

    The old engine strands a request now and then (its start fails on a busy SQLite and is retried
    only at the next start): once nothing has moved for ``STALL_S``, the seeding is over and the
    figures count the deployments that are verifying.
    """
    started = float(engine.wait_for("started", 120)["seen"])
    last, since = -1, time.monotonic()
    deadline = started + timeout
    while (verifying := store.count("verifying")) < count and time.monotonic() < deadline:
        if not engine.alive():
            raise RuntimeError(f"the engine process died while seeding, at {store.phases()}")
        if verifying != last:
            last, since = verifying, time.monotonic()
        elif verifying and store.count("building", "deploying") == 0 and time.monotonic() - since > STALL_S:
            break
        time.sleep(0.5)
    if not store.count("verifying"):
        raise RuntimeError(f"nothing verifying after {timeout:.0f}s of seeding: {store.phases()}")
    return time.monotonic() - started


def steady(
    engine: s.EngineProcess, store: s.StoreReader, prom: str, intervals: int
) -> list[dict[str, float]]:
    rows = []
    before = (time.monotonic(), engine.cpu_s(), store.guard_ticks(), s.prometheus_queries(prom))
    for _ in range(intervals):
        time.sleep(INTERVAL_S)
        now = (time.monotonic(), engine.cpu_s(), store.guard_ticks(), s.prometheus_queries(prom))
        wall = now[0] - before[0]
        rows.append(
            {
                "wall_s": round(wall, 2),
                "ticks_stored": now[2] - before[2],
                "cpu_share": round((now[1] - before[1]) / wall, 3),
                "prometheus_requests": now[3] - before[3],
                "load1": round(s.load()[0], 2),
            }
        )
        before = now
    return rows


def quiet(store: s.StoreReader, for_s: float = 0.5, timeout: float = 15.0) -> bool:
    """Wait for a moment when no tick is being stored (none for ``for_s``), so that a pause does not
    land in the middle of a tick whose rest would then count as the next one; False if none came."""
    deadline = time.monotonic() + timeout
    last, changed = store.guard_ticks(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if (now := store.guard_ticks()) != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed >= for_s:
            return True
    return False


def all_due_tick(
    engine: s.EngineProcess, store: s.StoreReader, prom: str, count: int, marks: lag.LagMarks
) -> dict[str, Any]:
    calm = quiet(store)
    marks.mark(engine, "pause")  # the steady phase's lag report, read before the child stops
    engine.pause()
    time.sleep(INTERVAL_S + 1.0)
    ticks, cpu, queries = store.guard_ticks(), engine.cpu_s(), s.prometheus_queries(prom)
    # Handled after SIGCONT, after the sample that spans the stop (it stays in "pause").
    marks.mark(engine, "all_due", wait=False)
    resumed = time.monotonic()
    engine.resume()
    done = s.wait_until(lambda: store.guard_ticks() - ticks >= count, 60.0, step=0.05)
    wall = time.monotonic() - resumed
    # Read when the N-th tick is stored, as the wall time is (the tail below, for the loop-lag phase
    # only, can hold the next beat's tick when the pause ended just before it).
    stored, used, requests = (
        store.guard_ticks() - ticks,
        engine.cpu_s() - cpu,
        s.prometheus_queries(prom) - queries,
    )
    # The round goes on after the last tick is stored (due times, verdicts): its end in the phase too.
    time.sleep(LAG_TAIL_S)
    marks.mark(engine, "after", wait=False)
    marks.collect(engine, "pause")
    marks.collect(engine, "all_due")
    return {
        "all_stored": done,
        "paused_between_ticks": calm,
        "ticks_stored": stored,
        "wall_s": round(wall, 3),
        "cpu_s": round(used, 3),
        "prometheus_requests": requests,
        "load1": round(s.load()[0], 2),
    }


def one_case(
    prom: Any, count: int, intervals: int, folder: Path, clone_above: int | None, instruments: dict[str, bool]
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    names = [s.service(i) for i in range(count)]
    books = [s.guarded_playbook(n, run, interval=INTERVAL_S, window=WINDOW_S, jenkins=False) for n in names]
    with s.emulated_stack(prom, folder, books, run) as (env, store):
        load_before = s.load()
        requests, copied = count, {}
        if clone_above is not None and count > clone_above:
            # SEEDED of them through the engine, then copies of one of them (see --clone-above).
            with (
                s.engine_process(env, deploy=SEEDED, log=folder / "seed.log") as seeder,
                s.tail_on_error(seeder),
            ):
                seed(seeder, store, SEEDED, timeout=120.0)
            template = store.verifying_ids()[0]
            url = env["SHIPTHREAD_DATABASE_URL"]
            copied = s.clone_deployments(url, template, names[SEEDED:], INTERVAL_S)
            requests = 0
        marks = lag.LagMarks(folder, **instruments)
        with (
            s.engine_process(env | marks.env(), deploy=requests, log=folder / "engine.log") as engine,
            s.tail_on_error(engine),
        ):
            seeded = seed(engine, store, count, timeout=max(60.0, count * 0.4))
            marks.collect(engine, "start")
            s.feed_healthy(prom.url, run, names)  # samples well inside Prometheus's 5 min look-back
            time.sleep(INTERVAL_S)  # let the last-seeded reach their first tick
            verifying = store.count("verifying")
            marks.mark(engine, "steady")
            rows = steady(engine, store, prom.url, intervals)
            tick = all_due_tick(engine, store, prom.url, verifying, marks)
            rss = engine.rss_mb()
        return {
            "deployments": count,
            "verifying": verifying,
            "seeded_in_s": round(seeded, 1),
            "engine_start_s": round(engine.lines["started"]["seen"] - engine.spawned, 1),
            "seeded_by": "engine" if not copied else f"engine ({SEEDED}), then copies: {copied}",
            "steady": rows,
            "one_tick_all_due": tick,
            "rss_mb": round(rss, 1),
            "loop_lag": marks.reports,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in s.load()],
            "phases_at_end": store.phases(),
        }


def report(case: dict[str, Any]) -> None:
    n = case["verifying"]
    rows = case["steady"]
    ticks = [r["ticks_stored"] for r in rows]
    cpu = [r["cpu_share"] for r in rows]
    reqs = [r["prometheus_requests"] for r in rows]
    tick = case["one_tick_all_due"]
    print(
        f"{n:5d} of {case['deployments']} deployments verifying x {SHAPES} checks, "
        f"{INTERVAL_S:.0f}s interval "
        f"(seeded in {case['seeded_in_s']}s, {case['seeded_by']}; engine start {case['engine_start_s']}s; "
        f"load {case['load_before'][0]} -> {case['load_after'][0]})"
    )
    print(
        f"      one tick, all due: {tick['wall_s']:.2f}s wall, {tick['cpu_s']:.2f}s CPU, "
        f"{tick['ticks_stored']}/{n} stored, {tick['prometheus_requests']} Prometheus requests "
        f"(target ≤ 1 s CPU, ≤ {INTERVAL_S / 2:.0f}s wall)"
        f"{'' if tick['paused_between_ticks'] else ' [paused mid-tick: no quiet moment in 15 s]'}"
    )
    print(
        f"      steady: ticks stored per interval {ticks} of {n} (target {n} each); "
        f"CPU {', '.join(f'{c:.0%}' for c in cpu)} of a core (target ≤ 15 %)"
    )
    print(
        f"      Prometheus requests per interval {reqs} (target {SHAPES}); engine RSS {case['rss_mb']} MB",
        flush=True,
    )
    phases = case["loop_lag"]
    for phase in ("start", "running", "steady", "all_due"):
        if phase in phases:
            print(f"      loop, {phase}: {lag.summary(phases[phase])} (target: no callback > 50 ms)")
    if "pause" in phases:
        print(f"      loop, pause (SIGSTOP, not judged): {lag.summary(phases['pause'])}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--counts", default="10,100,1000", help="deployments verifying at once (comma-separated)"
    )
    parser.add_argument("--intervals", type=int, default=3, help="guard intervals of steady state to measure")
    parser.add_argument(
        "--clone-above",
        type=int,
        default=100,
        help=f"above this many, request only {SEEDED} through the engine and copy one's stored rows "
        "for the rest (the old engine needs minutes to request 1,000); -1: request every one",
    )
    parser.add_argument(
        "--asyncio-debug",
        action="store_true",
        help="run the engine in asyncio's debug mode (slow_callback_duration 50 ms) and count its "
        "'Executing ... took' warnings per phase; debug mode makes every callback dearer",
    )
    parser.add_argument(
        "--callback-cpu",
        action="store_true",
        help="time every callback's own CPU in the engine (asyncio's Handle._run wrapped) and name "
        "the heaviest per phase",
    )
    args = parser.parse_args()
    if args.clone_above < 0:
        args.clone_above = None
    s.exit_on_sigterm()
    doc: dict[str, Any] = {"machine": s.machine(), "interval_s": INTERVAL_S, "checks": SHAPES, "cases": []}
    doc["asyncio_debug"], doc["callback_cpu"] = args.asyncio_debug, args.callback_cpu
    print(f"tree under test: {doc['machine']['tree']}; load {doc['machine']['load_at_start']}")
    prom = s.start_prometheus()
    try:
        for count in (int(c) for c in args.counts.split(",")):
            with tempfile.TemporaryDirectory(prefix="shipthread-bench-") as tmp:
                instruments = {"debug": args.asyncio_debug, "callbacks": args.callback_cpu}
                case = one_case(prom, count, args.intervals, Path(tmp), args.clone_above, instruments)
            doc["cases"].append(case)
            report(case)
    finally:
        prom.stop()
    print(f"wrote {s.write_results('guard_scale', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
