"""Crash-harness runs as forks of one pre-imported process, so that no run pays Python's start-up.

The crash tests start the harness (``tests.engine.crash_harness``) 25 to 30 times per deployment
and SIGKILL it at a transition; a fresh interpreter spends 2-4 s importing the bot (SQLAlchemy,
Alembic, aiohttp, the kubernetes client, matplotlib) before its first transition, which was most
of those tests' time. ``python -m tests.engine.prefork`` imports the harness once and then, for
each request read on its stdin, forks a child that runs the harness as ``python -m
tests.engine.crash_harness ARGS`` would: its own process (its own pid, memory, database
connections, event loop), its own environment and working folder, stdout and stderr to files, and
killed for real by its SIGKILL. The parent holds no thread, no event loop and no connection when it
forks (it only imported modules), so a child starts from exactly what a fresh process would have
built by then; ``random`` reseeds itself in every fork.

``Prefork`` is the test side: ``run`` answers as ``subprocess.run(..., capture_output=True,
text=True, timeout=...)`` does (-9 for a SIGKILLed run, ``TimeoutExpired`` past the timeout).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import IO, Any

PRELOAD = (
    "tests.engine.crash_harness",
    # What a run imports lazily on its way to its first transition (found with sys.modules).
    "aiosqlite",
    "kubernetes.client.api.apps_v1_api",  # the client's API classes load all its models (~1 s)
    "kubernetes.client.api.core_v1_api",
    "pydantic.validate_call_decorator",
)
"""What the parent imports once: the harness, and what a run would import lazily."""


def _child(request: dict[str, Any]) -> int:
    """In the fork: become the harness process the request describes, run it, return its code."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    sys.argv = ["tests.engine.crash_harness", *request["argv"]]
    from tests.engine import crash_harness  # preloaded by serve(); the test side never needs it

    try:
        return crash_harness.cli(request["argv"])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _exited_within(pid: int, timeout: float) -> bool:
    """Has the child ended within ``timeout`` s? (Not reaped: ``waitpid`` still has its status.)"""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # a kernel older than 5.3: look every 20 ms instead
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.02)
        return False
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(ready)


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    """The child's return code as ``subprocess`` reports it, and whether it had to be killed."""
    exited = _exited_within(pid, timeout)
    if not exited:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), not exited


def serve() -> None:
    """Fork one harness run per request line on stdin; answer one line per run on stdout."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    answers = sys.stdout
    answers.write(json.dumps({"ready": os.getpid()}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request)
            finally:
                os._exit(code)  # never back into the parent's loop (nor its atexit handlers)
        returncode, timed_out = _wait(pid, float(request["timeout"]))
        answers.write(json.dumps({"returncode": returncode, "timed_out": timed_out}) + "\n")
        answers.flush()
    os._exit(0)  # nothing to clean up: skip the seconds of finalising every module it imported


class Prefork:
    """The pre-imported parent, started once; ``run`` forks one harness run from it."""

    def __init__(self, root: Path) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="prefork-")
        self._count = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.engine.prefork"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._ready = False  # it imports while the test sets up; the first run waits for it

    def _answer(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        assert line, f"the prefork parent died (exit {self._proc.poll()})"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(
        self, argv: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m tests.engine.crash_harness ARGV`` as a fork; its code and its output."""
        assert self._proc.stdin is not None
        if not self._ready:
            assert "ready" in self._answer(), "the prefork parent did not start"
            self._ready = True
        self._count += 1
        out, err = (Path(self._folder.name) / f"{self._count}.{name}" for name in ("out", "err"))
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
            "timeout": timeout,
        }
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = self._answer()
        stdout, stderr = out.read_text(), err.read_text()
        out.unlink()
        err.unlink()
        args = [sys.executable, "-m", "tests.engine.crash_harness", *argv]
        if answer["timed_out"]:
            raise subprocess.TimeoutExpired(args, timeout, stdout, stderr)
        return subprocess.CompletedProcess(args, int(answer["returncode"]), stdout, stderr)

    def close(self) -> None:
        stdin: IO[str] | None = self._proc.stdin
        if stdin is not None:
            stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._folder.cleanup()

    def __enter__(self) -> Prefork:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    serve()
