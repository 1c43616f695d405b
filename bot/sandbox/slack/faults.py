"""Outages on demand for the Slack emulator: answer 5xx, hang, or do the work and lose the answer.

A notifier is only known to survive Slack's bad days if a test can make Slack have one. A test
installs faults through ``POST /_sandbox/faults`` (``DELETE`` clears them); each applies to the Web
API methods it names (all when none) for a span of emulator time and/or a number of calls:

- ``error``: answer ``status`` (default 500) with ``{"ok": false, "error": "fatal_error"}``, change nothing;
- ``hang``: hold the request until the fault ends (at most ``hang_s`` real seconds), then answer 504,
  change nothing — the client sees a timeout;
- ``accept_then_hang``: do the call (the message is posted), then hold the answer the same way —
  the client times out on a request Slack did accept, the case duplicate-safe posting is for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from bot.sandbox.slack.records import JSONDict

MODES: Final = ("error", "hang", "accept_then_hang")


@dataclass(frozen=True)
class Fault:
    mode: str
    start: float
    """Emulator time from which it applies."""
    until: float | None
    """Emulator time at which it ends; None: until cleared or its calls are spent."""
    calls: int | None = None
    """How many more calls it applies to; None: any number."""
    status: int = 500
    methods: frozenset[str] = frozenset()
    hang_s: float = 30.0
    """The longest a hang holds one request, in real seconds."""

    def applies(self, method: str, now: float) -> bool:
        return (
            now >= self.start
            and (self.until is None or now < self.until)
            and (self.calls is None or self.calls > 0)
            and (not self.methods or method in self.methods)
        )

    def to_json(self) -> JSONDict:
        return {
            "mode": self.mode,
            "start": self.start,
            "until": self.until,
            "calls": self.calls,
            "status": self.status,
            "methods": sorted(self.methods),
            "hang_s": self.hang_s,
        }


def parse_fault(payload: JSONDict, now: float) -> Fault:
    """A fault from the control API's JSON; ``ValueError`` names what is wrong."""
    mode = str(payload.get("mode", "error"))
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    start = now + _number(payload, "start_in", 0.0)
    seconds = payload.get("seconds")
    calls = payload.get("calls")
    if seconds is None and calls is None:
        raise ValueError("give seconds (how long) and/or calls (how many) for a fault")
    methods = payload.get("methods", [])
    if not isinstance(methods, list):
        raise ValueError("methods must be a list of Web API method names")
    status = int(payload.get("status", 500))
    if not 500 <= status <= 599:
        raise ValueError("status must be a 5xx code")
    return Fault(
        mode=mode,
        start=start,
        until=None if seconds is None else start + _number(payload, "seconds", 0.0),
        calls=None if calls is None else int(calls),
        status=status,
        methods=frozenset(str(m) for m in methods),
        hang_s=_number(payload, "hang_s", 30.0),
    )


def _number(payload: JSONDict, name: str, default: float) -> float:
    value: Any = payload.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number") from None
    if number < 0:
        raise ValueError(f"{name} must be >= 0")
    return number


class Faults:
    """The installed faults; callers hold the emulator's lock."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self.generation = 0
        """Bumped by ``clear``: a hang started before it lets go at once."""

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()
        self.generation += 1

    def take(self, method: str, now: float) -> Fault | None:
        """The first fault that applies to this call, counting the call against it."""
        for index, fault in enumerate(self._faults):
            if fault.applies(method, now):
                if fault.calls is not None:
                    self._faults[index] = replace(fault, calls=fault.calls - 1)
                return fault
        return None

    def holds(self, fault: Fault, generation: int, now: float) -> bool:
        """Whether a hang of ``fault`` (taken at ``generation``) should keep holding its request."""
        return generation == self.generation and (fault.until is None or now < fault.until)

    def to_json(self) -> list[JSONDict]:
        return [f.to_json() for f in self._faults]
