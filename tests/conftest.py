"""Fixtures shared by every test package: one real Prometheus per session, fed by remote write."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prometheus import PrometheusServer, find_prometheus, missing_server


@pytest.fixture(scope="session")
def prometheus() -> Iterator[PrometheusServer]:
    binary = find_prometheus()
    if binary is None:
        missing_server("prometheus")
        raise AssertionError("unreachable")
    server = PrometheusServer(binary).start()
    try:
        yield server
    finally:
        server.stop()
