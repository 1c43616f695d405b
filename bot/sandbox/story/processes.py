"""The processes the sandbox starts beside the emulators: the Debian Prometheus and ``shipthread serve``.

Each is started by its binary, stopped by its PID (also after a failure or Ctrl-C) and waited on
over HTTP with a timeout, never by sleeping a guessed time. ``request_json`` is the sandbox's one
HTTP helper: a timeout on every call and a bounded retry.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from bot.sandbox.child_processes import free_port, stop_by_pid, wait_ready

HTTP_TIMEOUT_S: Final = 5.0
_SERVING: Final = re.compile(r"serving on [^:\s]+:(\d+)")


class StackError(RuntimeError):
    """Something the sandbox needs could not be started; the message says what and why."""


def find_prometheus(path: str | None = None) -> str | None:
    """The ``prometheus`` binary on ``path`` (default ``$PATH``), else the Debian package's."""
    found = shutil.which("prometheus", path=path)
    if found:
        return found
    return "/usr/bin/prometheus" if path is None and os.access("/usr/bin/prometheus", os.X_OK) else None


def request_json(method: str, url: str, body: Any = None, attempts: int = 3) -> tuple[int, Any]:
    """One JSON request with a timeout, retried on connection errors and 5xx; (status, JSON)."""
    data = None if body is None else json.dumps(body).encode()
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.2 * attempt)
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 -- our own servers
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
                text = response.read().decode()
                return response.status, json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                text = exc.read().decode(errors="replace")
                with contextlib.suppress(ValueError):
                    return exc.code, json.loads(text)
                return exc.code, text
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = str(exc)
    raise StackError(f"{method} {url}: {problem}")


# -- Prometheus ------------------------------------------------------------------------------------


class PrometheusProcess:
    """The Debian ``prometheus`` on a free port, scraping ``targets`` every second; stopped by PID."""

    def __init__(self, binary: str, targets: list[str]) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = targets
        self._dir = Path(tempfile.mkdtemp(prefix="shipthread-sandbox-prom-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> PrometheusProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> PrometheusProcess:
        """Start the binary without waiting: its URL is known already, so what needs it can start too."""
        config = self._dir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "demo-service",
                            "scrape_interval": "1s",
                            "static_configs": [{"targets": self.targets}],
                        }
                    ],
                }
            )
        )
        log = self._dir / "prometheus.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self._dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches us, and we stop it
            )
        return self

    def wait_ready(self, timeout: float = 20.0) -> PrometheusProcess:
        assert self._proc is not None, "launch() first"
        log = self._dir / "prometheus.log"
        if wait_ready(self._proc, f"{self.url}/-/ready", timeout):
            return self
        if self._proc.poll() is not None:
            raise StackError(f"prometheus exited at start: {log.read_text()[-1500:]}")
        self.stop()
        raise StackError(f"prometheus was not ready within {timeout:.0f} s")

    def wait_for_data(self, query: str, timeout: float = 30.0) -> None:
        """Wait until ``query`` returns a sample of 1: the first scrapes take a few seconds, and a guard
        started before them would judge a service it cannot see yet."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, answer = request_json("GET", url)
            result = ((answer or {}).get("data") or {}).get("result") or [] if status == 200 else []
            if result and float(result[0]["value"][1]) == 1.0:
                return
            time.sleep(0.2)
        raise StackError(f"prometheus saw no {query} within {timeout:.0f} s")

    def stop(self) -> None:
        stop_by_pid(self._proc)
        shutil.rmtree(self._dir, ignore_errors=True)


# -- shipthread serve ------------------------------------------------------------------------------


@dataclass
class ServeProcess:
    """``python -m bot serve`` on a free port; its stderr (JSON log lines) kept for diagnosis.

    Spawned first (``spawn_serve``) and waited on later (``wait_serving``), so its seconds of imports
    pass while the sandbox waits for something else; ``port`` is known once it said where it listens.
    """

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    listening: list[int] = field(default_factory=list)
    said: threading.Event = field(default_factory=threading.Event)
    """Set once it said where it listens, or its log ended (it exited)."""

    @property
    def port(self) -> int:
        assert self.listening, "wait_serving() first"
        return self.listening[0]

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            found = _SERVING.search(line)
            if found and not self.listening:
                self.listening.append(int(found[1]))
                self.said.set()
        self.said.set()

    def wait_serving(self, timeout: float = 40.0) -> ServeProcess:
        """Wait until it says where it listens; ``StackError`` with its log otherwise."""
        if not self.said.wait(timeout) or not self.listening:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
            raise StackError("shipthread serve did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def tail(self, count: int = 15) -> list[str]:
        """The last log lines, warnings and errors first (what explains a failure)."""
        noted = [line for line in self.lines if '"level": "warning"' in line or '"level": "error"' in line]
        return noted[-count:] + self.lines[-count:]

    def stop(self, timeout: float = 20.0) -> int | None:
        stop_by_pid(self.process, timeout)
        return self.process.returncode


def spawn_serve(folder: Path, environ: Mapping[str, str]) -> ServeProcess:
    """Start serve without waiting for it (``wait_serving``); its log is read from now on."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--upgrade",
            "--poll-interval",
            "0.2",
            "--drain",
            "5",
        ],
        env={**os.environ, **environ},
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    serve = ServeProcess(process)
    threading.Thread(target=serve.read_log, name="sandbox-serve-log", daemon=True).start()
    return serve


def start_serve(folder: Path, environ: Mapping[str, str], timeout: float = 40.0) -> ServeProcess:
    """Start serve and wait until it says where it listens; ``StackError`` with its log otherwise."""
    return spawn_serve(folder, environ).wait_serving(timeout)


# -- the world the playbooks expect ----------------------------------------------------------------
