"""``shipthread sandbox emulators``: start the Slack, Jenkins and Kubernetes emulators together.

Each emulator runs in its own thread with its own event loop (the Jenkins and Kubernetes clients
are synchronous). One line per emulator names it and its base URL, so a script can pick them up.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from aiohttp import web

from bot.sandbox.jenkins import create_jenkins_app
from bot.sandbox.kubernetes import create_kubernetes_app
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import create_slack_app

EMULATORS: tuple[tuple[str, Callable[[], web.Application]], ...] = (
    ("slack", create_slack_app),
    ("jenkins", create_jenkins_app),
    ("kubernetes", create_kubernetes_app),
)


def start_emulators(host: str = "127.0.0.1", port_base: int = 0) -> dict[str, ServerThread]:
    """Start every emulator; ``port_base`` N gives ports N, N+1, N+2 (0: random free ports)."""
    servers: dict[str, ServerThread] = {}
    try:
        for offset, (name, factory) in enumerate(EMULATORS):
            port = port_base + offset if port_base else 0
            servers[name] = ServerThread(factory(), host=host, port=port, name=name).start()
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def emulators_command(host: str, port_base: int) -> int:
    """Run the emulators until interrupted (Ctrl-C or SIGTERM)."""
    try:
        servers = start_emulators(host, port_base)
    except (OSError, RuntimeError) as exc:
        print(f"shipthread: cannot start the emulators: {exc}", file=sys.stderr)
        return 1
    for name, server in servers.items():
        print(f"{name} {server.url}", flush=True)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    for server in servers.values():
        server.stop()
    return 0
