"""Benchmark: SIGKILL the engine with 50 deployments in flight, restart it, time until all move on.

50 services each get one ``/deploy`` through ``Engine.deploy`` in a child engine process
(``bench/_support_engine.py``: ``bot.container.build``, real timer, default poll interval): Jenkins
build, rolling rollout, a guard of 3 checks every 1 s over a 120 s window (so the verifying ones
stay verifying), emulators 50x faster than real time, a real Prometheus. ``--kill-after`` seconds
after the last request the process gets SIGKILL, with its deployments in whatever phase they reached
(building, deploying, verifying). A fresh process is started on the same database; a deployment has
*moved on* when the store holds an event for it that it did not hold at the kill (its next
transition or guard tick), read with SQL every 20 ms.

Figures: time from the restart (process spawned, and ``Engine.start`` returned) until every one has
moved on, target ≤ 2 s; the same for those that were verifying, reported separately (their next
event is a guard tick, so it waits for their next due time, at most one interval after the restart).

    python bench/recovery.py [--in-flight 50] [--kill-after 1.0] [--repeat 2]

Writes bench/results/recovery-<before|after>.json.
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

TARGET_S = 2.0
INTERVAL_S = 1.0
WATCH_S = 60.0
"""How long after the restart the bench waits for every deployment to move on."""


def secs(value: float | None, group: dict[str, Any] | None = None) -> str:
    if group is not None and not group["count"]:
        return "none in flight"
    return f"{value}s" if value is not None else f"not all within {WATCH_S:.0f}s"


def kill_in_flight(
    env: dict[str, str], store: s.StoreReader, count: int, kill_after: float, log: Path
) -> float:
    engine = s.EngineProcess(env, deploy=count, log=log)
    with s.tail_on_error(engine):
        engine.wait_for("requested", 120)
        time.sleep(kill_after)
        killed = time.time()
        engine.kill()
    return killed


def watch_restart(
    env: dict[str, str], store: s.StoreReader, log: Path, timeout: float
) -> tuple[dict[str, float], dict[str, str], dict[str, float], float]:
    """(deployment -> wall time it moved on, phase at the kill, the restarted process's wall marks)."""
    at_kill = store.last_seq()
    phases = {i: p for i, p, _, _ in store.lifecycles()}
    waiting = {i for i, p in phases.items() if p not in s.TERMINAL}
    moved: dict[str, float] = {}
    spawned = time.time()
    engine = s.EngineProcess(env, log=log)
    try:
        with s.tail_on_error(engine):
            deadline = time.monotonic() + timeout
            while waiting - moved.keys() and time.monotonic() < deadline:
                now = time.time()
                for did, seq in store.last_seq().items():
                    if did in waiting and did not in moved and seq > at_kill.get(did, 0):
                        moved[did] = now
                time.sleep(0.02)
            # The CPU it took (imports, recovery, the first turns): the wall times stretch with the
            # machine's load, this much less.
            cpu = engine.cpu_s()
            marks = {"spawned": spawned, "started": engine.wait_for("started", 60)["wall"], "cpu": cpu}
    finally:
        engine.stop()
    return moved, {i: phases[i] for i in waiting}, marks, spawned


def one_run(prom: Any, count: int, kill_after: float, folder: Path) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    names = [s.service(i) for i in range(count)]
    books = [s.guarded_playbook(n, run, interval=INTERVAL_S, window=120.0, jenkins=True) for n in names]
    with s.emulated_stack(prom, folder, books, run) as (env, store):
        load_before = s.load()
        kill_in_flight(env, store, count, kill_after, folder / "engine.log")
        moved, phases, marks, spawned = watch_restart(env, store, folder / "engine2.log", WATCH_S)
    out: dict[str, Any] = {
        "in_flight": len(phases),
        "phases_at_kill": {
            p: sum(1 for q in phases.values() if q == p) for p in sorted(set(phases.values()))
        },
        "moved_on": len(moved),
        "engine_start_s": round(marks["started"] - spawned, 2),
        "cpu_until_all_moved_s": round(marks["cpu"], 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in s.load()],
    }
    for label, group in (
        ("all", set(phases)),
        ("verifying", {i for i, p in phases.items() if p == "verifying"}),
        ("others", {i for i, p in phases.items() if p != "verifying"}),
    ):
        times = [moved[i] for i in group if i in moved]
        complete = len(times) == len(group)
        out[label] = {
            "count": len(group),
            "all_moved": complete,
            "from_spawn_s": round(max(times) - spawned, 2) if times and complete else None,
            "from_started_s": round(max(times) - marks["started"], 2) if times and complete else None,
            "p50_from_spawn_s": round(s.percentile([t - spawned for t in times], 0.5), 2) if times else None,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--in-flight", type=int, default=50, help="deployments in flight at the kill")
    parser.add_argument("--kill-after", type=float, default=1.0, help="seconds after the last request")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    s.exit_on_sigterm()
    doc: dict[str, Any] = {"machine": s.machine(), "target_s": TARGET_S, "runs": []}
    print(f"tree under test: {doc['machine']['tree']}; load {doc['machine']['load_at_start']}")
    prom = s.start_prometheus()
    try:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="shipthread-bench-") as tmp:
                result = one_run(prom, args.in_flight, args.kill_after, Path(tmp))
            doc["runs"].append(result)
            every, verifying, others = result["all"], result["verifying"], result["others"]
            print(
                f"SIGKILL with {result['in_flight']} in flight {result['phases_at_kill']}: "
                f"every one moved on {secs(every['from_spawn_s'])} after the restart "
                f"({secs(every['from_started_s'])} after Engine.start "
                f"returned, which took {result['engine_start_s']}s; CPU {result['cpu_until_all_moved_s']}s) "
                f"(target ≤ {TARGET_S:.0f} s); "
                f"verifying: {secs(verifying['from_spawn_s'], verifying)}, "
                f"others: {secs(others['from_spawn_s'], others)}; "
                f"{result['moved_on']}/{result['in_flight']} moved; load {result['load_before'][0]} -> "
                f"{result['load_after'][0]}",
                flush=True,
            )
    finally:
        prom.stop()
    print(f"wrote {s.write_results('recovery', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
