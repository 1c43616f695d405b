"""In-memory stand-ins for the CI, the cluster and the metrics: the engine's fast test tier.

Why it exists: the engine's scenario tests ran against the emulators and a real Prometheus and
waited on the real clock. These stand-ins implement ``bot.ports.CI``, ``Cluster`` and ``Metrics``
over plain data on a ``ManualClock`` the test advances, and pass the same contract suite
(``tests/contracts/``) as the adapters do over HTTP against the emulators and Prometheus, so what
the fast tier shows about the engine holds for the real systems too. They sit in the sandbox
(imported by tests and never by production layers) and import only ports, domain and errors.
"""

from bot.sandbox.memory.ci import BuildPlan, MemoryBuild, MemoryCI
from bot.sandbox.memory.clock import ManualClock
from bot.sandbox.memory.cluster import MemoryCluster
from bot.sandbox.memory.metrics import MemoryMetrics

__all__ = ["BuildPlan", "ManualClock", "MemoryBuild", "MemoryCI", "MemoryCluster", "MemoryMetrics"]
