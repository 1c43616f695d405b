"""``shipthread serve`` with a bench's instruments attached: a profiler, asyncio's slow-callback
warnings and the garbage collector's pauses, none of which the production process carries.

Why it exists: ``bench/ack.py`` must say *why* the ack path costs what it costs (a profile of the
serve process during the bursts) and prove that no single callback holds the event loop over
50 ms (asyncio's own debug instrument). Both belong to the bench, not to ``shipthread serve``: a
production switch would cost a test on every path even when off. So the bench starts the serve
process through this file instead of ``python -m bot``::

    python bench/ack_probe.py [--profile OUT] [--loop-debug S] [--gc-timing] serve --host ...

- ``--profile OUT``: cProfile on the event loop's thread, on from SIGUSR1 to SIGUSR2 (the bench
  sends them around each burst), accumulated and written to ``OUT`` (pstats) at exit.
- ``--loop-debug S``: the loop in debug mode with ``slow_callback_duration = S``: asyncio logs
  ``Executing <callback> took N seconds`` for every callback (one step of a task, a timer, an I/O
  handler) that ran longer, naming it.
- ``--gc-timing``: each collection (of generation 0: over 1 ms) writes ``gc gen G took M ms`` on
  stderr.

Everything after the options goes to ``shipthread`` unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

GC_REPORT_S = 0.001
"""A youngest-generation collection shorter than this is not worth a line (most take ~0.1 ms);
every collection of the older generations gets one, so a burst's total pause adds up."""


def profile_between_signals(out: Path) -> None:
    """cProfile on from SIGUSR1 to SIGUSR2; the sum of every such window written to ``out`` at exit."""
    profiler = cProfile.Profile()

    def on(signum: int, frame: Any) -> None:
        profiler.enable()  # signal handlers run on the main thread: the event loop's

    def off(signum: int, frame: Any) -> None:
        profiler.disable()

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    import atexit

    def dump() -> None:
        profiler.disable()
        profiler.dump_stats(str(out))

    atexit.register(dump)


def debug_loops(slow_s: float) -> None:
    """Every loop ``asyncio.run`` makes from now on runs in debug mode, warning over ``slow_s``."""

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            loop = super().new_event_loop()
            loop.slow_callback_duration = slow_s
            return loop

    asyncio.set_event_loop_policy(Policy())
    # asyncio.run(debug=None) leaves debug to the environment: turned on here instead, for this
    # process only (PYTHONASYNCIODEBUG would reach every child it starts).
    original = asyncio.run

    def run(main: Any, *, debug: bool | None = None) -> Any:
        return original(main, debug=True)

    asyncio.run = run
    locate_slow_steps(slow_s)


def locate_slow_steps(slow_s: float) -> None:
    """For each task step over ``slow_s``, write where the task stopped: ``slow step`` on stderr.

    asyncio names the task of a slow step, not the code; a step runs from one ``await`` to the
    next, so the frames of our code the task is suspended in now end the code that was slow.
    """
    original = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        started = time.perf_counter()
        original(handle)
        took = time.perf_counter() - started
        task = getattr(getattr(handle, "_callback", None), "__self__", None)
        if took >= slow_s and isinstance(task, asyncio.Task) and not task.done():
            stack = task.get_stack(limit=None)
            ours = [f for f in stack if "/bot/" in f.f_code.co_filename] or stack  # else the library's
            where = " < ".join(
                f"{f.f_code.co_filename.rpartition('/site-packages/')[2].rpartition('/main/')[2]}:"
                f"{f.f_lineno} {f.f_code.co_name}"
                for f in reversed(ours[-3:])
            )
            sys.stderr.write(f"slow step {took * 1000:.0f} ms {task.get_name()}: at {where or '?'}\n")
            sys.stderr.flush()

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def time_collections() -> None:
    """A line on stderr for each collection (generation 0: over ``GC_REPORT_S``): generation and pause."""
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        if info["generation"] > 0 or took >= GC_REPORT_S:
            sys.stderr.write(
                f"gc gen {info['generation']} took {took * 1000:.1f} ms ({info['collected']} collected)\n"
            )
            sys.stderr.flush()

    gc.callbacks.append(callback)


class ProbeLines:
    """What the instruments wrote on the serve process's stderr, seen from the bench, by phase.

    ``feed`` is given each line as it is read; ``phase`` names the phase the lines belong to from
    now on (start, burst, work); ``slow`` and ``pauses`` are what each phase saw.
    """

    _SLOW = re.compile(r"Executing (.+?) took (\d+\.\d+) seconds")
    _GC = re.compile(r"^gc gen (\d) took (\S+) ms")
    _STEP = re.compile(r"^slow step (\d+) ms (.*)$")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase = "start"
        self.slow: dict[str, list[tuple[float, str]]] = {}
        """Phase → (seconds, callback) of each callback asyncio found over its threshold."""
        self.pauses: dict[str, list[tuple[int, float]]] = {}
        """Phase → (generation, ms) of each collection reported."""
        self.steps: dict[str, list[tuple[int, str]]] = {}
        """Phase → (ms, task: where it stopped) of each slow task step."""

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name

    def feed(self, line: str) -> None:
        slow, pause, step = self._SLOW.search(line), self._GC.search(line), self._STEP.search(line)
        with self._lock:
            if step:
                self.steps.setdefault(self._phase, []).append((int(step[1]), step[2][:240]))
            if slow:
                self.slow.setdefault(self._phase, []).append((float(slow[2]), slow[1][:160]))
            if pause:
                self.pauses.setdefault(self._phase, []).append((int(pause[1]), float(pause[2])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--loop-debug", type=float)
    parser.add_argument("--gc-timing", action="store_true")
    args, rest = parser.parse_known_args()
    if args.profile:
        profile_between_signals(args.profile)
    if args.loop_debug:
        debug_loops(args.loop_debug)
    if args.gc_timing:
        time_collections()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bot.cli import main as shipthread

    return shipthread(rest)


if __name__ == "__main__":
    raise SystemExit(main())
