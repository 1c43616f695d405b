"""A ``shipthread serve`` process against the emulators, driven only the way Slack drives it.

The stack's files (config, playbooks, Jenkins jobs) are written by ``tests.engine.stack``; the
process gets them through the environment, exactly as an operator's deployment would. Tests talk
to it through ``SlackDriver`` (signed requests) and read what it did in the Slack emulator (the
thread, ephemerals, views), the cluster, Jenkins and its own ``/metrics`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import DriverResponse, SlackDriver, SlackEmulator, emulator_of
from tests.engine.stack import write_stack_files

TOKEN = "xoxb-sandbox"
SECRET = "serve-test-signing-secret-0123456789"
CHANNEL = "C0DEPLOYS"


@dataclass
class ServeProcess:
    process: subprocess.Popen[str]
    port: int
    slack: ServerThread
    folder: Path
    prometheus_url: str
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def emulator(self) -> SlackEmulator:
        return emulator_of(self.slack.app)

    def driver(self, secret: str = SECRET, **options: Any) -> SlackDriver:
        return SlackDriver(f"{self.url}/slack/events", secret, self.slack.url, **options)

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{self.url}{path}") as response,
        ):
            return response.status, await response.text()

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of ``/metrics`` (0 when absent)."""
        _, text = await self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and got == want:
                return float(value)
        return 0.0

    # -- what the bot posted -----------------------------------------------------------------------

    def thread_messages(self, deployment_id: str, channel: str = CHANNEL) -> dict[str, dict[str, Any]]:
        """The deployment's messages in Slack, by the notifier's key (card, approval:0, ...)."""
        found: dict[str, dict[str, Any]] = {}
        for message in self.emulator.messages(channel):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("deployment") == deployment_id:
                found[str(payload.get("key"))] = message
        return found

    def ephemerals(self, user: str, channel: str = CHANNEL) -> list[str]:
        return [str(e.get("text", "")) for e in self.emulator.ephemeral(channel, user)]

    async def wait(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            if time.monotonic() > deadline:
                noted = [
                    line for line in self.lines if '"level": "warning"' in line or '"level": "error"' in line
                ]
                tail = "\n".join(noted[-10:] + self.lines[-20:])
                raise AssertionError(f"timed out waiting for {what}; last log lines:\n{tail}")
            await asyncio.sleep(0.05)

    async def button(
        self, deployment_id: str, key: str | None, action_id: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the thread message ``key`` (None: any, the newest) shows the button ``action_id``."""

        def has_button() -> dict[str, Any] | None:
            messages = self.thread_messages(deployment_id)
            candidates = [messages[key]] if key in messages else [] if key else list(messages.values())
            with_it = [m for m in candidates if f'"{action_id}"' in json.dumps(m.get("blocks") or [])]
            return max(with_it, key=lambda m: float(m["ts"])) if with_it else None

        found: dict[str, Any] = await self.wait(has_button, timeout, f"{action_id} on {deployment_id} {key}")
        return found

    async def click(
        self, driver: SlackDriver, deployment_id: str, key: str | None, action_id: str, user: str
    ) -> DriverResponse:
        message = await self.button(deployment_id, key, action_id)
        return await driver.click_button(CHANNEL, message["ts"], action_id, user)

    # -- the process ---------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


_SERVING = re.compile(r"serving on [^:]+:(\d+)")


def start_serve(
    folder: Path,
    environ: dict[str, str],
    *,
    args: tuple[str, ...] = (),
    timeout: float = 30.0,
    slack: ServerThread,
    prometheus_url: str,
    program: tuple[str, ...] = ("-m", "bot"),
) -> ServeProcess:
    """Start ``python -m bot serve`` on a free port and wait until it says where it listens.

    ``program``: what runs instead of ``-m bot`` (a bench's wrapper of the ``shipthread`` command).
    """
    env = {**os.environ, **environ}
    process = subprocess.Popen(
        [sys.executable, *program, "serve", "--host", "127.0.0.1", "--port", "0", *args],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            found = _SERVING.search(line)
            if found and not port:
                port.append(int(found[1]))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or not port:
        process.kill()
        process.wait(5)
        raise AssertionError("serve did not start:\n" + "\n".join(lines[-40:]))
    return ServeProcess(process, port[0], slack, folder, prometheus_url, lines)


def serve_environ(
    folder: Path,
    prometheus_url: str,
    jenkins: ServerThread,
    kubernetes_url: str,
    slack: ServerThread,
    books: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
) -> dict[str, str]:
    environ = write_stack_files(folder, prometheus_url, jenkins, kubernetes_url, books, config)
    return {
        **environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{slack.url}/api/",
    }
