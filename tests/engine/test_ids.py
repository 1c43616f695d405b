"""Deployment ids through the engine: wide enough for millions, and a taken one is only a retry.

The id source is injected through ``bot.container.build`` (``new_id``), as a test would steer any
other input; nothing of ours is patched. The tests run on the in-memory stand-ins (``stack_of``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pytest

from bot.domain.commands import Deploy, Rollback
from bot.domain.phases import Phase
from bot.errors import DuplicateDeployment
from tests.engine.stack import playbook
from tests.engine.typed import StackOf, deployment_of

ID = re.compile(r"d[0-9a-hjkmnp-tv-z]{10}")


def source(ids: Iterable[str]) -> tuple[Callable[[], str], list[str]]:
    """An id source that hands out ``ids`` in order, and the list of what it handed out."""
    it, drawn = iter(ids), []

    def new_id() -> str:
        drawn.append(next(it))
        return drawn[-1]

    return new_id, drawn


async def test_new_deployments_get_ten_character_base32_ids(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run), playbook("cart", run))
    first = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")
    second = await stack.engine.deploy(Deploy("cart", "1.1.0"), "U0ALICE")
    assert first.ok and second.ok, (first.message, second.message)
    assert ID.fullmatch(deployment_of(first).id) and ID.fullmatch(deployment_of(second).id)
    assert deployment_of(first).id != deployment_of(second).id


async def test_a_taken_id_is_a_retry_with_a_new_one(run: str, stack_of: StackOf) -> None:
    new_id, drawn = source(["d0000000001", "d0000000001", "d0000000002", "d0000000001", "d0000000003"])
    stack = await stack_of(playbook("checkout", run), playbook("cart", run), new_id=new_id)
    stack.ratio("checkout", 0.01)
    first = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")
    assert first.ok and deployment_of(first).id == "d0000000001"
    # The next draw collides with the first deployment: the request still succeeds, with the next id.
    second = await stack.engine.deploy(Deploy("cart", "1.1.0"), "U0ALICE")
    assert second.ok, second.message
    assert deployment_of(second).id == "d0000000002"
    # The same for a deployment /rollback creates.
    await stack.finish(deployment_of(first).id)
    undo = await stack.engine.rollback(Rollback("checkout", to_version="1.0.0"), "U0ALICE")
    assert undo.ok, undo.message
    assert deployment_of(undo).id == "d0000000003" and deployment_of(undo).is_rollback
    assert drawn == ["d0000000001", "d0000000001", "d0000000002", "d0000000001", "d0000000003"]
    stored = {d.id: d.service for d in await stack.store.history(None, limit=10)}
    assert stored == {"d0000000001": "checkout", "d0000000002": "cart", "d0000000003": "checkout"}
    assert (await stack.get("d0000000002")).phase is not Phase.REQUESTED


async def test_retries_are_bounded(run: str, stack_of: StackOf) -> None:
    new_id, drawn = source(["d0000000001"] * 10)
    stack = await stack_of(playbook("checkout", run), playbook("cart", run), new_id=new_id)
    assert (await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")).ok
    with pytest.raises(DuplicateDeployment):
        await stack.engine.deploy(Deploy("cart", "1.1.0"), "U0ALICE")
    assert len(drawn) == 1 + 5
