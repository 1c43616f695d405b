"""The engine's chat as production wires it: the real Slack notifier with the real renderer.

The notifier needs what only a built runtime has (its database, its rule for a deployment's
channel), while the runtime needs a chat to be built; this stand-in is handed to the build and
wired to ``bot.container.slack_notifier`` with ``bot.slack.thread.plan`` right after, exactly as
``shipthread serve`` pairs them. The crash harness and the engine's Slack outage test use it.
"""

from __future__ import annotations

from bot.adapters.slack_notifier import NotifierOptions, SlackNotifier
from bot.config import Settings
from bot.container import Runtime, slack_notifier
from bot.domain.notifications import Notification
from tests.support.renderer import planner


class SlackChat:
    """``bot.ports.Chat`` forwarding to the notifier once ``wire`` has built and started it."""

    def __init__(self) -> None:
        self.notifier: SlackNotifier | None = None

    async def wire(
        self, runtime: Runtime, settings: Settings, options: NotifierOptions | None = None
    ) -> None:
        """Build the notifier on the runtime's database (``options`` None: pacing and timeout
        from config, as in production), hand it to the runtime to close, and start it."""
        self.notifier = slack_notifier(
            settings, runtime.store.engine, planner, channel_for=runtime.engine.ctx.channel, options=options
        )
        runtime.notifier = self.notifier
        await self.notifier.start()

    async def notify(self, notification: Notification) -> None:
        assert self.notifier is not None, "SlackChat.wire was not called"
        await self.notifier.notify(notification)
