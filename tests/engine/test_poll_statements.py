"""The statements one poll costs, pinned: a poll is what the timer does most for a deployment waiting
on Jenkins or the cluster, so a read added to it is paid at every poll interval of every deployment."""

from __future__ import annotations

from pathlib import Path

from bot.domain.commands import Deploy
from bot.domain.phases import Phase
from tests.engine.fast_stack import make_memory_stack
from tests.engine.stack import playbook
from tests.store.test_due_work import statements


async def test_a_poll_of_a_building_deployment_reads_it_and_its_outbox_once(tmp_path: Path, run: str) -> None:
    stack = await make_memory_stack(tmp_path, [playbook("checkout", run)], run=run)
    try:
        stack.add_workload("checkout", "registry.example.com/checkout:1.0.0")
        outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
        assert outcome.deployment is not None, outcome.message
        dep = await stack.get(outcome.deployment.id)
        assert dep.phase is Phase.BUILDING and dep.build_queue_item is not None
        with statements(stack.store) as sent:
            await stack.engine.ticks.poll(dep.id)  # the build is still queued: nothing to store
        assert (await stack.get(dep.id)).version_no == dep.version_no
        assert len(sent) == 1, sent  # the deployment, with whether its outbox owes anything (nothing)
    finally:
        await stack.runtime.close()
