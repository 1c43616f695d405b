"""What the engine tests annotate with: the type of the shared ``stack_of`` fixture, and narrowing.

``stack_of`` (``tests/engine/conftest.py``) builds a stack on the test's systems: the in-memory
stand-ins (``MemoryStack``) or the emulators and a real Prometheus (``Stack``); both drive the same
engine the same way. An ``Outcome`` carries its deployment only when the command made or found one;
a test that relies on it says so with ``deployment_of``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

from bot.domain.deployment import Deployment
from bot.engine.handling import Outcome
from tests.engine.fast_stack import MemoryStack
from tests.engine.stack import Stack

AnyStack: TypeAlias = Stack | MemoryStack
StackOf: TypeAlias = Callable[..., Awaitable[AnyStack]]
"""The ``stack_of`` fixture: ``await stack_of(*playbooks, **options)``."""


def deployment_of(outcome: Outcome) -> Deployment:
    """The deployment the command acted on, which the test expects it to have (else it fails, saying why)."""
    assert outcome.deployment is not None, f"no deployment: {outcome.message}"
    return outcome.deployment
