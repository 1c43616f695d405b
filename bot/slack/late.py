"""Late-bound stand-ins for the engine's chat and chart poster.

The Slack notifier and the chart poster keep their state in the bot's database, which
``bot.container.build`` creates, while ``build`` wants the chat and the poster handed in. These
forward to the real ones once ``shipthread serve`` has built them on the runtime's database, before
the engine starts (so before anything is said).
"""

from __future__ import annotations

from bot.domain.chart import VerdictChart
from bot.domain.notifications import Notification
from bot.ports import ChartPoster, Chat


class LateChat:
    def __init__(self) -> None:
        self.target: Chat | None = None

    async def notify(self, notification: Notification) -> None:
        assert self.target is not None, "the notifier is wired before the engine starts"
        await self.target.notify(notification)


class LateCharts:
    def __init__(self) -> None:
        self.target: ChartPoster | None = None

    async def post_chart(self, chart: VerdictChart, comment: str) -> None:
        assert self.target is not None, "the chart poster is wired before the engine starts"
        await self.target.post_chart(chart, comment)
