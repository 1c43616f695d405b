"""Servers run as child processes (Prometheus, ``shipthread serve``): a free port, readiness, stopping.

Why it exists: the sandbox's story (``bot.sandbox.story.processes``) and the tests' Prometheus
(``tests.support.prometheus``) start and stop the same kind of child the same way; the tests may import
the sandbox, not the other way round, so the one copy lives here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(proc: subprocess.Popen[Any], ready_url: str, timeout: float) -> bool:
    """Poll ``ready_url`` until it answers 200 (True), or ``proc`` exits or ``timeout`` passes (False:
    the caller tells the two apart with ``proc.poll()`` and says which)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as response:  # noqa: S310 -- our own child
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):  # not listening yet
            pass
        time.sleep(0.05)
    return False


def stop_by_pid(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` s; a child that ended is left be.

    By PID, never by name: other copies of the same binary may belong to someone else."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
