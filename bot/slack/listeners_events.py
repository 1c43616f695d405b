"""Events: ``app_home_opened`` publishes the Home tab, once per ``event_id``.

Events are acked by Bolt itself; the Events API retries a delivery it thinks failed (with the
same ``event_id`` and ``X-Slack-Retry-Num``), and Socket Mode may redeliver: the event id is
claimed in the store, so a retry publishes nothing twice.
"""

from __future__ import annotations

from typing import Any, Final

from slack_bolt.async_app import AsyncApp

from bot.slack import home, keys
from bot.slack.answers import Answer
from bot.slack.services import Services

EVENTS: Final = ("app_home_opened",)
"""The events the app subscribes to (the manifest must declare exactly these)."""


def register(app: AsyncApp, s: Services) -> None:
    async def on_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        s.background.spawn(_home_opened(s, body, str(event.get("user", ""))), "app_home_opened")

    handlers = {"app_home_opened": on_home_opened}
    # Registered from EVENTS (which the manifest test compares with the manifest): an event named
    # there without a handler fails at start-up, and a handler not named there is never registered.
    for name in EVENTS:
        app.event(name)(handlers[name])


async def _home_opened(s: Services, body: dict[str, Any], user: str) -> None:
    async def publish() -> Answer:
        await publish_home(s, user)
        return Answer("published", acted=True)  # nobody is answered: the key is spent once published

    if (await s.once.run(keys.event_key(body), publish)).repeat:
        s.metrics.duplicates.labels("event").inc()


async def publish_home(s: Services, user: str) -> None:
    """Build ``user``'s Home tab from the store and publish it."""
    active = await s.store.active_deployments()
    locks = await s.store.active_locks()
    recent: dict[str, list[Any]] = {}
    for service in sorted(s.playbooks):
        past = await s.store.history(service, limit=home.RECENT_PER_SERVICE)
        if past:
            recent[service] = past
    allowed = {lk.id for lk in locks if lk.id is not None and await s.may_unlock(user, lk)}
    shown = active + [d for deps in recent.values() for d in deps]
    view = home.view(active, locks, recent, s.now(), await s.links(shown), allowed)
    await s.client.views_publish(user_id=user, view=view)
