"""Engine test fixtures: fresh Jenkins and Kubernetes emulators per test, the shared Prometheus.

``stack_of`` builds a stack on the test's ``systems``: a test that does not parametrize them runs on
the in-memory stand-ins only (``tests.engine.stack.MEMORY``, marked ``fast``), one marked
``tests.engine.stack.BOTH`` on the emulators and a real Prometheus too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.engine.fast_stack import MemoryStack, make_memory_stack
from tests.engine.stack import MEMORY, Stack, make_stack


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "systems" not in metafunc.fixturenames:
        return
    if any(m.args and m.args[0] == "systems" for m in metafunc.definition.iter_markers("parametrize")):
        return
    metafunc.parametrize("systems", [MEMORY])


@pytest.fixture
async def stack_of(
    request: pytest.FixtureRequest, tmp_path: Path, run: str, systems: str
) -> AsyncIterator[Callable[..., Awaitable[Stack | MemoryStack]]]:
    """Build a stack for the given playbooks (their Deployments at 1.0.0) on the test's systems (the
    stand-ins, or the emulators and Prometheus); closed after the test."""
    built: list[Stack | MemoryStack] = []

    async def build(*books: dict[str, Any], **options: Any) -> Stack | MemoryStack:
        stack: Stack | MemoryStack
        if systems == "memory":
            stack = await make_memory_stack(tmp_path, list(books), run=run, **options)
        else:
            prometheus, jenkins, kubernetes = (
                request.getfixturevalue(name) for name in ("prometheus", "jenkins_server", "k8s_server")
            )
            stack = await make_stack(
                tmp_path, prometheus, jenkins, kubernetes, list(books), run=run, **options
            )
        built.append(stack)
        for book in books:
            stack.add_workload(book["service"], f"registry.example.com/{book['service']}:1.0.0")
        return stack

    yield build
    for stack in built:
        await stack.runtime.close()
