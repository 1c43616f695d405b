"""A real Prometheus server for tests: started on 127.0.0.1 with a random port, stopped by PID.

One server per test session (its first scrape takes seconds; remote write needs none). Tests feed it
by remote write (``tests.support.promwrite``) or by an exporter it scrapes (``scrape()``, a
config reload), under labels no other test uses. Without the binary the
tests skip with a reason, except under ``CI=true`` where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.sandbox.child_processes import free_port as free_port  # re-exported: tests import it from here
from bot.sandbox.child_processes import stop_by_pid, wait_ready


def find_prometheus() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )


def missing_server(what: str) -> None:
    """Skip with a clear reason, or fail under CI=true, when a server binary is missing."""
    message = f"{what} is not installed (apt-get install -y --no-install-recommends {what})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


class PrometheusServer:
    """A throwaway Prometheus with the remote-write receiver on."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="shipthread-prom-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._jobs: dict[str, tuple[tuple[str, ...], str]] = {}

    def _write_config(self) -> Path:
        config = self._dir / "prometheus.yml"
        text = "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
        if self._jobs:
            text += "scrape_configs:\n"
            for job, (targets, interval) in self._jobs.items():
                listed = ", ".join(f'"{t}"' for t in targets)
                text += f"  - job_name: {job}\n    scrape_interval: {interval}\n"
                text += f"    static_configs:\n      - targets: [{listed}]\n"
        config.write_text(text)
        return config

    def scrape(self, job: str, targets: list[str], interval: str = "1s") -> None:
        """Scrape ``targets`` (``host:port``, path ``/metrics``) as ``job`` from now on (reloads config)."""
        self._jobs[job] = (tuple(targets), interval)
        self._write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200, resp.status

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        config = self._write_config()
        self._log = open(self._dir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
                "--web.enable-lifecycle",  # POST /-/reload, for scrape()
                "--storage.tsdb.retention.time=1d",
                "--query.lookback-delta=5m",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_ready(self._proc, f"{self.url}/-/ready", timeout):
            return self
        if self._proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(self._dir / 'prometheus.log').read_text()[-2000:]}")
        self.stop()
        raise RuntimeError(f"prometheus not ready within {timeout}s")

    def stop(self) -> None:
        """Stop it by PID (SIGTERM, then SIGKILL) and remove its data."""
        stop_by_pid(self._proc)
        if getattr(self, "_log", None):
            self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def kill(self) -> None:
        """Take it down hard (for 'Prometheus is down' tests); ``stop()`` still cleans up."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
