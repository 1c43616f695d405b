"""What the Bolt listeners work with: the engine, the store, playbooks, and the Slack client.

One value built by ``shipthread serve`` (the composition root hands in the concrete store and
client), so every listener module takes the same thing and none of them builds anything. The
permission rule for lifting locks lives here, because the command, the thread's button and the
App Home button all ask it.
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
        """The lock's author, an approver of the environment (any stage, any service) or break-glass.

        The same people who may let a deployment into the environment may reopen it; a guard lock
        (author ``shipthread``) needs one of them.
        """
        if user == lock.author:
            return True
        groups = {
            stage.group
            for book in self.playbooks.values()
            if lock.service in (None, book.service)
            for name, env in book.environments.items()
            if name == lock.env
            for stage in env.approvals
        }
        if not groups:
            # Nobody approves deployments there: anyone who may deploy there may unlock it.
            return True
        if self.break_glass_group:
            groups.add(self.break_glass_group)
        for group in sorted(groups):
            if user in await self.directory.members(group):
                return True
        return False
