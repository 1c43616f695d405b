"""Whether the sandbox's story runs with Prometheus, and what it plays and tells without it.

Why a module of its own: the scripted story (``play``) and the interactive rehearsal
(``interactive``) both find the Prometheus binary the same way, and what a run without it means —
the sandbox's playbook then has no guard; a person's ``--playbooks`` keep theirs, and their ticks end
inconclusive and hold — is one rule, told by both, apart from the steps of the story.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from bot.sandbox.story.processes import find_prometheus
from bot.sandbox.story.stack import read_playbooks

PROMETHEUS_VARIABLE: Final = "SHIPTHREAD_SANDBOX_PROMETHEUS"
"""The Prometheus binary to run (default: ``prometheus`` on PATH, else ``/usr/bin/prometheus``)."""
GUARDED_STEPS: Final = (
    "a bad release caught by the guard and rolled back",
    "the guard lock, a deploy refused while locked, the unlock",
)
"""The story's steps that need a guard, named when a run without Prometheus leaves them out."""


def prometheus_binary() -> str | None:
    chosen = os.environ.get(PROMETHEUS_VARIABLE)
    if chosen is not None:
        return chosen if os.access(chosen, os.X_OK) else None
    return find_prometheus()


def guarded_places(books: list[dict[str, Any]]) -> list[str]:
    """``service/env`` for each environment of ``books`` that a guard watches (its own or a canary step's).

    Read from the plain documents, as the sandbox reads them: ``serve`` validates them fully.
    """
    places = []
    for book in books:
        for env, spec in (book.get("environments") or {}).items():
            spec = spec if isinstance(spec, dict) else {}
            canary = spec.get("canary")
            steps = canary.get("steps") if isinstance(canary, dict) else None
            stepped = any(isinstance(step, dict) and step.get("guard") for step in steps or ())
            if spec.get("guard") or stepped:
                places.append(f"{book.get('service')}/{env}")
    return places


def without_prometheus(playbooks: Path | None) -> str:
    """What a run without Prometheus judges: the sandbox's playbook then has no guard; a person's keeps its
    guards as written, and with nothing to ask each of their ticks is inconclusive."""
    if playbooks is None:
        return "Playing the steps that need no QoS guard: the playbook has none, so nothing is judged.\n"
    places = guarded_places(read_playbooks(playbooks)) if playbooks.is_dir() else []
    if not places:
        return "Playing the steps that need no QoS guard: your playbooks have none, so nothing is judged.\n"
    return (
        f"Your playbooks' guards are kept as written ({', '.join(places)}), but without Prometheus their "
        "queries reach nothing: every tick is inconclusive, and past the guard's inconclusive_limit "
        "(0 unless set) the deployment is held for a person.\n"
    )
