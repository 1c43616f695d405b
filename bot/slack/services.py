"""What the Bolt listeners work with: the engine, the store, playbooks, and the Slack client.

One value built by ``shipthread serve`` (the composition root hands in the concrete store and
client), so every listener module takes the same thing and none of them builds anything. Who may
lift a lock is the engine's rule (it enforces it on every unlock); App Home asks it here to draw
only the Unlock buttons the viewer may use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.deployment import Deployment
from bot.domain.locks import Lock
from bot.domain.playbook import Playbook
from bot.engine.engine import Engine
from bot.metrics import Metrics
from bot.ports import Clock, Directory, Store
from bot.slack.work import Background, Once

ThreadOf = Callable[[str], Awaitable[tuple[str, str] | None]]
"""A deployment id → (channel, parent ts) of its thread, or None before it is posted."""


@dataclass
class Services:
    engine: Engine
    store: Store
    playbooks: Mapping[str, Playbook]
    directory: Directory
    clock: Clock
    client: AsyncWebClient
    """The bot's Web API client (counted in the metrics); listeners use it, not Bolt's per-request one."""
    metrics: Metrics
    thread_of: ThreadOf
    break_glass_group: str | None = None
    workspace_url: str = "https://slack.com/"
    """From ``auth.test``: the base of message permalinks."""
    background: Background = field(default_factory=Background)
    once: Once = field(init=False)

    def __post_init__(self) -> None:
        self.once = Once(self.store, self.clock.now)

    def now(self) -> datetime:
        return self.clock.now()

    # -- links ----------------------------------------------------------------------------------

    def permalink(self, channel: str, ts: str) -> str:
        return f"{self.workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"

    async def links(self, deployments: list[Deployment]) -> dict[str, str]:
        """Thread permalinks of those deployments whose thread is posted."""
        found: dict[str, str] = {}
        for dep in deployments:
            where = await self.thread_of(dep.id)
            if where is not None:
                found[dep.id] = self.permalink(*where)
        return found

    # -- who may lift a lock ----------------------------------------------------------------------

    async def may_unlock(self, user: str, lock: Lock) -> bool:
        """Would the engine let ``user`` lift ``lock``? (App Home draws Unlock buttons by it.)

        The rule is the engine's (``approvals.may_unlock``), which enforces it on every unlock.
        """
        return await self.engine.may_unlock(user, lock)
