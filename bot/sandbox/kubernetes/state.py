"""The Kubernetes emulator's whole state: the store, the controllers, the clock, faults and calls.

Why a module of its own: the HTTP handlers (``api_server``, ``resources``, ``watch``, ``control``)
all act on this one object; keeping it apart lets each of them import it without importing the
others.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web

from bot.sandbox.kubernetes.admission import Admission
from bot.sandbox.kubernetes.etcd import Store
from bot.sandbox.kubernetes.rollout import RolloutController
from bot.sandbox.kubernetes.rollout_base import ScaledClock
from bot.sandbox.kubernetes.vocabulary import NAMESPACES

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class Fault:
    """What the next ``remaining`` requests matching ``method`` and ``path`` (a regex) suffer."""

    path: re.Pattern[str]
    method: str = "*"
    status: int | None = 500
    delay: float = 0.0
    remaining: int = 1
    retry_after: int | None = None
    """``Retry-After`` seconds to send (429 sends 1 by default; clients retry such answers themselves)."""

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path.search(path) is not None


@dataclass(frozen=True)
class Call:
    """One API request the emulator received."""

    method: str
    path: str
    query: str
    content_type: str
    status: int


@dataclass
class KubernetesSandbox:
    """The emulator's whole state.

    Not thread-safe: touch it only from the server's event loop (from a test thread, go through the
    HTTP control API, or ``ServerThread.call``).
    """

    initial_time_scale: float = 1.0
    pod_startup_seconds: float = 0.25
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    faults: list[Fault] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shutdown = asyncio.Event()  # set when the server stops: delayed answers and watches end
        self.clock = ScaledClock(self.initial_time_scale)
        self.store = Store(self.clock.now)
        self.admission = Admission()
        self.controller = RolloutController(
            self.store, self.clock, self.admission, pod_startup_seconds=self.pod_startup_seconds
        )
        self._create_namespaces()

    def _create_namespaces(self) -> None:
        for name in self.namespaces:
            if self.store.find(NAMESPACES, "", name) is None:
                self.store.create(
                    NAMESPACES, self.admission.for_create(NAMESPACES, {"metadata": {"name": name}})
                )

    def reset(self) -> None:
        """A fresh cluster: no objects but the namespaces, no faults, no calls, the initial time scale."""
        self.store.clear()
        self.admission.reset()
        self.controller.reset()
        self.faults.clear()
        self.calls.clear()
        self.clock.set_time_scale(self.initial_time_scale)
        self._create_namespaces()

    def set_bad_images(self, patterns: Iterable[str]) -> None:
        self.controller.bad_images = [str(p) for p in patterns]

    def set_time_scale(self, time_scale: float) -> None:
        self.controller.reconcile()  # what happened so far happened at the old pace
        self.clock.set_time_scale(time_scale)

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None


KUBERNETES_SANDBOX = web.AppKey("kubernetes_sandbox", KubernetesSandbox)


def kubernetes_sandbox(app: web.Application) -> KubernetesSandbox:
    """The state behind an app made by ``create_kubernetes_app``."""
    return app[KUBERNETES_SANDBOX]
