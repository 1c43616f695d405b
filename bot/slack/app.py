"""The Bolt ``AsyncApp``: request verification on, every listener registered, no I/O per request.

Bolt's default single-workspace authorization calls ``auth.test`` on the first request; here the
bot's identity comes from the ``auth.test`` made at start-up (``shipthread serve`` needs it for
``/readyz`` anyway), so no request ever waits on Slack before its ack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import listeners_actions, listeners_commands, listeners_events, listeners_views
from bot.slack.services import Services


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """What ``auth.test`` said about the bot token."""

    team_id: str
    bot_user_id: str
    bot_id: str | None
    url: str
    enterprise_id: str | None = None

    @classmethod
    def from_auth_test(cls, answer: dict[str, Any]) -> BotIdentity:
        return cls(
            team_id=str(answer.get("team_id", "")),
            bot_user_id=str(answer.get("user_id", "")),
            bot_id=answer.get("bot_id"),
            url=str(answer.get("url") or "https://slack.com/"),
            enterprise_id=answer.get("enterprise_id") or None,
        )


def build_app(s: Services, *, signing_secret: str, bot_token: str, identity: BotIdentity) -> AsyncApp:
    """The app with every Shipthread listener; serve it with ``bot.serve``."""

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=identity.enterprise_id,
            team_id=identity.team_id,
            bot_user_id=identity.bot_user_id,
            bot_id=identity.bot_id,
            bot_token=bot_token,
        )

    logger = logging.getLogger("shipthread.bolt")
    level = logger.level
    # Bolt reads SLACK_BOT_TOKEN from the environment by itself and warns that ``authorize`` wins
    # over it, twice, at every start: true, intended, and noise in the operator's log.
    logger.setLevel(logging.ERROR)
    try:
        app = AsyncApp(
            # Tokenless: Bolt gives each request a client with the token from ``authorize``; the
            # listeners use ``s.client`` (counted) instead.
            client=AsyncWebClient(base_url=s.client.base_url, timeout=s.client.timeout),
            signing_secret=signing_secret,
            authorize=authorize,
            request_verification_enabled=True,
            logger=logger,
        )
    finally:
        logger.setLevel(level)
    listeners_commands.register(app, s)
    listeners_actions.register(app, s)
    listeners_views.register(app, s)
    listeners_events.register(app, s)
    return app
