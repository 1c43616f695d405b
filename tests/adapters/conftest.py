"""Fixtures of the Kubernetes adapter tests: one emulator per module, reset for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.adapters.kubernetes import KubernetesCluster
from tests.adapters.test_kubernetes import CLUSTER, Emulator, adapter


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The module's emulator, reset to a fresh cluster with an empty ``shop`` namespace."""
    emulator.reset()
    return emulator


@pytest.fixture
async def cluster(emu: Emulator) -> AsyncIterator[KubernetesCluster]:
    adapter_ = adapter((CLUSTER, emu))
    yield adapter_
    adapter_.close()
