"""A deployment whose Jenkins job is disabled fails at once, saying why, instead of sitting in ``building``.

Jenkins answers a build of a disabled job with 409 "is not buildable"; the Jenkins adapter makes that
a ``PermanentError`` (not the shared table's retryable ``Conflict``), so the engine's trigger effect
ends the deployment with ``BuildFailed`` rather than keeping the effect pending for ever. Real
python-jenkins against the emulator, disabled through Jenkins' own API as an operator would.
"""

from __future__ import annotations

import jenkins as python_jenkins
import pytest

from bot.domain.commands import Deploy
from bot.domain.events import BuildFailed
from bot.domain.notifications import PhaseChanged
from bot.domain.phases import Phase
from bot.sandbox.server import ServerThread
from tests.engine.stack import EMULATORS, playbook
from tests.engine.typed import StackOf, deployment_of


@pytest.mark.parametrize("systems", [EMULATORS])
async def test_a_disabled_job_fails_the_deployment_and_says_why(
    run: str, stack_of: StackOf, jenkins_server: ServerThread
) -> None:
    stack = await stack_of(playbook("checkout", run))
    python_jenkins.Jenkins(jenkins_server.url, "shipthread", "sandbox-token", timeout=5).disable_job(
        "checkout-build"
    )
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id, timeout=10.0)
    assert dep.phase is Phase.FAILED
    assert "not buildable (disabled?)" in (dep.reason or "")
    failures = [
        n.event
        for n in stack.chat.notifications
        if isinstance(n, PhaseChanged) and isinstance(n.event, BuildFailed)
    ]
    assert len(failures) == 1 and "not buildable (disabled?)" in failures[0].reason
    assert stack.builds("checkout-build") == []
    assert stack.image("checkout") == "registry.example.com/checkout:1.0.0"
    assert not await stack.store.pending_effects()
