"""``bench/ack_probe.py`` instruments a real ``shipthread serve`` the way ``bench/ack.py`` reads it.

The ack bench's proofs rest on it: the profile of the ack path (cProfile between SIGUSR1 and
SIGUSR2, on the event loop's thread), asyncio's slow-callback warnings (debug mode, with the
threshold the bench gives) and the collector's pauses, all parsed from the process's stderr by
``ProbeLines``. A threshold of 0.1 ms makes nearly every callback "slow", so the test sees that the
instrument reaches the serve process's own loop without needing a slow callback in the bot.
"""

from __future__ import annotations

import importlib.util
import pstats
import signal
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from tests.engine.stack import playbook
from tests.slack.serve_process import ServeProcess

PROBE = Path(__file__).resolve().parents[2] / "bench" / "ack_probe.py"


def _probe_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ack_probe", PROBE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_probe_profiles_the_ack_and_reports_slow_callbacks_and_collections(
    run: str, serve_of: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    profile = tmp_path / "ack.pstats"
    program = (str(PROBE), "--profile", str(profile), "--loop-debug", "0.0001", "--gc-timing")
    serve = serve_of(playbook("checkout", run), program=program)
    probe = _probe_module().ProbeLines()
    for line in serve.lines:
        probe.feed(line)
    probe.phase("burst")
    seen = len(serve.lines)
    serve.process.send_signal(signal.SIGUSR1)
    driver = serve.driver()
    acked = await driver.slash_command("/deploy", "help")
    assert acked.status == 200 and "/deploy status [service]" in acked.json()["text"]
    serve.process.send_signal(signal.SIGUSR2)
    assert serve.stop() == 0
    for line in serve.lines[seen:]:
        probe.feed(line)

    # asyncio's own warning, from the serve process's loop, during start-up and during the request.
    assert probe.slow.get("start") and probe.slow.get("burst")
    assert all(took >= 0 and callback for took, callback in probe.slow["burst"])  # "took 0.000 seconds"
    # A task step is located where it stopped (our frames when there are any).
    assert any(":" in where for _, where in probe.steps.get("start", []))
    # Every collection of generation 1 or 2 is reported: start-up's full collection at least.
    assert any(gen == 2 for gen, _ in probe.pauses.get("start", []))
    # The profile covers the request's ack path (only the window between the two signals).
    stats = pstats.Stats(str(profile))
    functions = {(Path(file).name, name) for file, _, name in stats.stats}  # type: ignore[attr-defined]
    assert ("acks.py", "answer") in functions
    assert ("listeners_commands.py", "on_command") in functions
    assert not any(name == "serve_command" for _, name in functions)  # start-up was not profiled
