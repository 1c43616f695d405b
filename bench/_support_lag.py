"""How late the engine child's event loop runs, per phase of a bench: the proof "no callback > 50 ms".

Why it exists: issue 13 asks a loop-lag monitor to prove that no callback holds the loop over
50 ms during start and a 1,000-deployment guard tick. The engine child (``_support_engine.py``)
runs ``bot.looplag.LoopLag`` from before ``Engine.start`` and this module cuts its samples into
phases the bench names, and reports each phase as one JSON line on the child's stdout
(``{"event": "lag:<phase>", ...}``), which the bench reads with ``EngineProcess.wait_for``.

Two instruments, chosen by the bench through the child's environment:

- ``LoopLag`` (always): a timer every ``INTERVAL_S``; its lag is how long something else held the
  loop, its CPU-bound part (``held``) what the process's own callbacks held it for whatever the
  machine's load. A callback that ran ``d`` seconds makes a lag of at least ``d - INTERVAL_S``, so a
  phase whose largest ``held`` is ``h`` had no callback longer than ``h + INTERVAL_S`` on the CPU.
- asyncio's own (``BENCH_ASYNCIO_DEBUG=1``): debug mode with ``slow_callback_duration`` 50 ms, which
  logs ``Executing <handle> took N seconds`` for each slower callback; they are counted and named
  per phase. Debug mode makes every callback dearer (it records where each handle was created), and
  its durations are wall time, so a CPU-starved callback counts too: zero there is strong proof.

Phases: ``start`` (from before ``Engine.start`` until it returns), then ``running``; the bench
writes the next phase's name to the file ``BENCH_LAG_PHASES`` names and sends SIGUSR1: the child
reports the phase that ends and begins the named one. A SIGUSR1 sent while the child is stopped
(SIGSTOP) is handled after the first timer sample that follows SIGCONT, so the sample that spans
the stop falls in the phase before the mark.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INTERVAL_S = 0.005
"""The lag timer's period: the bound it gives on a callback's length is ``held + INTERVAL_S``."""
TARGET_S = 0.05
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SLOWEST = 5
"""Largest samples (and slow callbacks) kept per phase, with when they came."""
PHASES_ENV = "BENCH_LAG_PHASES"
DEBUG_ENV = "BENCH_ASYNCIO_DEBUG"
CALLBACKS_ENV = "BENCH_CALLBACK_CPU"
CALLBACK_SHOWN_S = 0.02
"""A callback that used more CPU than this is named in its phase's report (``BENCH_CALLBACK_CPU=1``)."""

Say = Callable[..., None]


class _Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.began = time.monotonic()
        self.cpu = time.process_time()
        self.samples = 0
        self.max_lag = 0.0
        self.max_held = 0.0
        self.lag_over: list[int] = [0] * len(BUCKETS)
        self.held_over: list[int] = [0] * len(BUCKETS)
        self.slowest: list[tuple[float, float, float]] = []
        self.slow_callbacks: list[tuple[float, str]] = []
        self.slow_count = 0
        self.cpu_callbacks: list[tuple[float, str]] = []
        self.cpu_over = 0
        self.max_callback_cpu = 0.0
        self.max_gc = 0.0
        self.gc_over_10ms = 0

    def observe(self, lag: float, held: float) -> None:
        self.samples += 1
        self.max_lag = max(self.max_lag, lag)
        self.max_held = max(self.max_held, held)
        for i, bound in enumerate(BUCKETS):
            self.lag_over[i] += lag > bound
            self.held_over[i] += held > bound
        if lag > 0.01:
            self.slowest.append((lag, held, time.monotonic() - self.began))
            self.slowest = sorted(self.slowest, reverse=True)[:SLOWEST]

    def slow(self, seconds: float, callback: str) -> None:
        self.slow_count += 1
        self.slow_callbacks.append((seconds, callback[:160]))
        self.slow_callbacks = sorted(self.slow_callbacks, reverse=True)[:SLOWEST]

    def callback_cpu(self, seconds: float, handle: asyncio.Handle) -> None:
        self.max_callback_cpu = max(self.max_callback_cpu, seconds)
        if seconds > TARGET_S:
            self.cpu_over += 1
        if seconds > CALLBACK_SHOWN_S:
            self.cpu_callbacks.append((seconds, describe(handle)))
            self.cpu_callbacks = sorted(self.cpu_callbacks, reverse=True)[:SLOWEST]

    def report(self) -> dict[str, Any]:
        over = BUCKETS.index(TARGET_S)
        return {
            "phase": self.name,
            "wall_s": round(time.monotonic() - self.began, 3),
            "cpu_s": round(time.process_time() - self.cpu, 3),
            "samples": self.samples,
            "max_lag_s": round(self.max_lag, 4),
            "max_held_s": round(self.max_held, 4),
            "lag_over_50ms": self.lag_over[over],
            "held_over_50ms": self.held_over[over],
            "lag_over": dict(zip(map(str, BUCKETS), self.lag_over, strict=True)),
            "held_over": dict(zip(map(str, BUCKETS), self.held_over, strict=True)),
            "slowest": [
                {"lag_s": round(a, 4), "held_s": round(b, 4), "at_s": round(c, 3)} for a, b, c in self.slowest
            ],
            "slow_callbacks": self.slow_count,
            "slowest_callbacks": [{"s": round(a, 3), "callback": b} for a, b in self.slow_callbacks],
            "max_callback_cpu_s": round(self.max_callback_cpu, 4),
            "max_gc_pause_s": round(self.max_gc, 4),
            "gc_pauses_over_10ms": self.gc_over_10ms,
            "callbacks_cpu_over_50ms": self.cpu_over,
            "cpu_heaviest_callbacks": [{"cpu_s": round(a, 4), "callback": b} for a, b in self.cpu_callbacks],
        }


def describe(handle: asyncio.Handle) -> str:
    """What a callback was: a task's coroutine and where it stands now (after the step), or the handle."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        where: list[str] = []
        coro: Any = task.get_coro()
        while coro is not None and len(where) < 12:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is None:
                break
            where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return f"task {task.get_name()}: " + " > ".join(where or ["(done)"])
    return repr(handle)[:200]


def measure_callbacks(phases: PhaseLag) -> None:
    """Every callback's own CPU time (``time.thread_time`` around ``Handle._run``): load-proof, unlike
    debug mode's wall time. A bench instrument: it wraps asyncio's ``Handle._run`` in this process."""
    run = asyncio.Handle._run

    def timed(handle: asyncio.Handle) -> None:
        began = time.thread_time()
        run(handle)
        phases.current.callback_cpu(time.thread_time() - began, handle)

    asyncio.Handle._run = timed  # type: ignore[method-assign,assignment]


class _SlowCallbacks(logging.Handler):
    """asyncio's debug-mode warning ``Executing %s took %.3f seconds``, counted in the phase it came."""

    def __init__(self, phases: PhaseLag) -> None:
        super().__init__(logging.WARNING)
        self._phases = phases

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if record.msg == "Executing %s took %.3f seconds" and isinstance(args, tuple) and len(args) == 2:
            handle, seconds = args
            self._phases.current.slow(float(str(seconds)), repr(handle))


class PhaseLag:
    """``LoopLag`` on the running loop, its samples kept per named phase and reported on a mark."""

    def __init__(self, say: Say, phases_file: Path | None, debug: bool) -> None:
        from bot.looplag import LoopLag

        self._say = say
        self._file = phases_file
        self.debug = debug
        self.current = _Phase("start")
        self._lag = LoopLag(lambda lag, held: self.current.observe(lag, held), INTERVAL_S)

    @classmethod
    def from_environ(cls, say: Say) -> PhaseLag:
        phases = os.environ.get(PHASES_ENV)
        return cls(say, Path(phases) if phases else None, os.environ.get(DEBUG_ENV) == "1")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.debug:
            loop.set_debug(True)
            loop.slow_callback_duration = TARGET_S
            logging.getLogger("asyncio").addHandler(_SlowCallbacks(self))
        if os.environ.get(CALLBACKS_ENV) == "1":
            measure_callbacks(self)
        gc.callbacks.append(self._gc)
        if self._file is not None:
            loop.add_signal_handler(signal.SIGUSR1, self._marked)
        self.current = _Phase("start")
        self._lag.start()

    def mark(self, phase: str) -> None:
        """Report the phase under way and begin ``phase``."""
        ended, self.current = self.current, _Phase(phase)
        self._say(f"lag:{ended.name}", debug=self.debug, interval_s=INTERVAL_S, **ended.report())

    def stop(self) -> None:
        self._lag.stop()

    def _gc(self, stage: str, info: dict[str, int]) -> None:
        """The cyclic collector's pauses (a callback can be slow only because a collection ran in it)."""
        if stage == "start":
            self._gc_began = time.perf_counter()
            return
        pause = time.perf_counter() - getattr(self, "_gc_began", time.perf_counter())
        self.current.max_gc = max(self.current.max_gc, pause)
        self.current.gc_over_10ms += pause > 0.01

    def _marked(self) -> None:
        assert self._file is not None
        self.mark(self._file.read_text().strip() or "unnamed")


# -- the bench's side ---------------------------------------------------------------------------


class LagMarks:
    """What the bench does to cut the child's samples: name the next phase, signal, read the report."""

    def __init__(self, folder: Path, debug: bool = False, callbacks: bool = False) -> None:
        self.file = folder / "lag-phase"
        self.debug = debug
        self.callbacks = callbacks
        self.current = "running"
        self.reports: dict[str, dict[str, Any]] = {}

    def env(self) -> dict[str, str]:
        return {
            PHASES_ENV: str(self.file),
            DEBUG_ENV: "1" if self.debug else "0",
            CALLBACKS_ENV: "1" if self.callbacks else "0",
        }

    def mark(self, engine: Any, phase: str, *, wait: bool = True) -> dict[str, Any] | None:
        """Begin ``phase`` in the child; with ``wait``, return the report of the phase it ended."""
        ended, self.current = self.current, phase
        self.file.write_text(phase)
        os.kill(engine.proc.pid, signal.SIGUSR1)
        return self.collect(engine, ended) if wait else None

    def collect(self, engine: Any, phase: str, timeout: float = 30.0) -> dict[str, Any]:
        doc = dict(engine.wait_for(f"lag:{phase}", timeout))
        for key in ("event", "wall", "seen"):
            doc.pop(key, None)
        self.reports[phase] = doc
        return doc


def summary(doc: dict[str, Any]) -> str:
    """One phase's report in a line: largest lag and CPU-bound part, counts over 50 ms, slow callbacks."""
    line = (
        f"max lag {doc['max_lag_s'] * 1000:.0f} ms, max CPU-held {doc['max_held_s'] * 1000:.0f} ms, "
        f"{doc['held_over_50ms']} held / {doc['lag_over_50ms']} lags over 50 ms in {doc['samples']} samples"
    )
    if doc["debug"]:
        names = "; ".join(f"{c['s'] * 1000:.0f} ms {c['callback']}" for c in doc["slowest_callbacks"][:3])
        line += f", asyncio debug: {doc['slow_callbacks']} callbacks over 50 ms"
        line += f" ({names})" if names else ""
    line += f", GC pause max {doc.get('max_gc_pause_s', 0) * 1000:.0f} ms"
    if doc.get("cpu_heaviest_callbacks") or doc.get("max_callback_cpu_s"):
        names = "; ".join(
            f"{c['cpu_s'] * 1000:.0f} ms {c['callback']}" for c in doc["cpu_heaviest_callbacks"][:3]
        )
        line += (
            f", callback CPU: max {doc['max_callback_cpu_s'] * 1000:.0f} ms, "
            f"{doc['callbacks_cpu_over_50ms']} over 50 ms" + (f" ({names})" if names else "")
        )
    return line
