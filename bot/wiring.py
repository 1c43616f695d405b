"""The serve process's wiring: checked config in, a runtime and a Bolt app on it out.

``shipthread serve`` only serves (``bot.serve``); what it serves is put together here, on top of
the composition root (``bot.container``, which builds the engine and the adapters): the checks an
operator must pass before anything starts (config and playbooks as ``playbook validate`` judges
them, the Slack secrets, the database at the newest migration), the Slack client and the bot's
identity, the notifier and the chart poster bridged into the engine, the metrics' hooks, and the
Bolt app with every listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import container
from bot.adapters import retrying
from bot.adapters.slack_usergroups import usergroup_resolver
from bot.config import Settings, load_settings
from bot.container import Runtime
from bot.domain.playbook import Playbook
from bot.errors import ConfigError, ConfigProblems
from bot.metrics import CountingChat, Metrics
from bot.playbooks import cross_validate, load_playbooks
from bot.slack.app import BotIdentity, build_app
from bot.slack.client import CountingWebClient
from bot.slack.late import LateCharts, LateChat
from bot.slack.outgoing import CARD
from bot.slack.services import Services, ThreadOf
from bot.slack.thread import plan
from bot.store import migrate
from bot.store.threads import ThreadStore


class StartupError(ConfigError):
    """Something an operator must fix before the bot can start; the message says what."""


@dataclass
class Wired:
    """Everything ``serve`` runs, built and checked, not started."""

    settings: Settings
    playbooks: Mapping[str, Playbook]
    runtime: Runtime
    services: Services
    app: AsyncApp
    metrics: Metrics
    unobserve: Callable[[], None]
    """Takes the metrics' observer off the adapters' retries (when the server stops)."""
    head_revision: str
    """The newest migration this Shipthread knows (``/readyz`` compares the database's with it)."""
    app_token: str | None = None
    """``SLACK_APP_TOKEN``, for Socket Mode only."""


def load_checked(environ: Mapping[str, str]) -> tuple[Settings, dict[str, Playbook]]:
    """Settings and playbooks, validated as ``playbook validate`` does; ``ConfigProblems`` otherwise."""
    settings = load_settings(None, environ)
    return settings, checked_playbooks(settings, environ)


def checked_playbooks(settings: Settings, environ: Mapping[str, str]) -> dict[str, Playbook]:
    """The playbooks, validated against ``settings`` as ``playbook validate`` does (``ConfigProblems``)."""
    playbooks = load_playbooks(environ.get("SHIPTHREAD_PLAYBOOKS") or settings.playbooks_dir)
    problems = cross_validate(playbooks, settings)
    if problems:
        raise ConfigProblems(problems)
    return playbooks


async def check_schema(url: str, upgrade: bool, current: str | None = None) -> str:
    """The database must be at the newest migration (or be migrated now, with ``upgrade``); returns
    that revision. ``current``: the database's revision when the caller has read it already."""
    head = migrate.head_revision()
    if current is None:
        current = await migrate.current_revision(url)
    if current == head:
        return head
    if upgrade:
        await migrate.upgrade(url)
        return head
    at = f"at revision {current}" if current else "not migrated"
    raise StartupError(
        f"the database is {at}; this Shipthread needs revision {head}: "
        "run `shipthread db upgrade` first (or start with `shipthread serve --upgrade`)"
    )


def secret(settings: Settings, name: str) -> str:
    value = getattr(settings.secrets, name.lower())
    if value is None:
        raise StartupError(f"{name} is not set (secrets come from the environment only)")
    return str(value.get_secret_value())


async def identify(client: CountingWebClient, attempts: int = 5) -> BotIdentity:
    """The bot's identity from ``auth.test``, retried briefly (Slack may be slow to answer at start)."""
    for attempt in range(attempts):
        try:
            answer = await client.auth_test()
            return BotIdentity.from_auth_test(dict(answer.data) if isinstance(answer.data, dict) else {})
        except Exception as exc:
            if attempt + 1 == attempts:
                raise StartupError(f"Slack auth.test failed: {exc}") from exc
            await asyncio.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


async def wire(
    environ: Mapping[str, str],
    *,
    socket_mode: bool = False,
    upgrade: bool = False,
    poll_interval_s: float | None = None,
    metrics: Metrics | None = None,
) -> Wired:
    """Validate everything, then wire the app; raises ``ConfigError`` (with its message) on a problem.

    The slow synchronous steps (reading and validating the YAML; Bolt inspecting every listener as
    it registers it) run in a thread, so the event loop never stalls at start. The steps that wait
    on the network, reading the database's revision and Slack's ``auth.test``, run meanwhile; their
    answers are judged after the playbooks', in the order an operator fixes things (config and
    playbooks, the schema, the secrets, Slack), and the first problem stops the rest.
    """
    settings = await asyncio.to_thread(load_settings, None, environ)
    metrics = metrics or Metrics()
    client = _web_client(settings, metrics)
    revision = asyncio.create_task(migrate.current_revision(settings.database_url), name="read revision")
    answer = asyncio.create_task(identify(client), name="auth.test") if client is not None else None
    try:
        playbooks = await asyncio.to_thread(checked_playbooks, settings, environ)
        head = await check_schema(settings.database_url, upgrade, await revision)
        bot_token = secret(settings, "SLACK_BOT_TOKEN")
        signing_secret = "" if socket_mode else secret(settings, "SLACK_SIGNING_SECRET")
        app_token = secret(settings, "SLACK_APP_TOKEN") if socket_mode else None
        assert client is not None and answer is not None  # the bot token is set (just checked)
        identity = await answer
    finally:
        await _settle(revision, answer)
    runtime = _runtime(settings, playbooks, metrics, client, poll_interval_s)
    services = Services(
        engine=runtime.engine,
        store=runtime.store,
        playbooks=playbooks,
        directory=runtime.engine.ctx.directory,
        clock=runtime.engine.ctx.clock,
        client=client,
        metrics=metrics,
        thread_of=_thread_of(ThreadStore(runtime.store.engine)),
        break_glass_group=settings.break_glass,
        workspace_url=identity.url,
    )
    app = await asyncio.to_thread(
        build_app, services, signing_secret=signing_secret, bot_token=bot_token, identity=identity
    )
    unobserve = retrying.observe(metrics)
    return Wired(settings, playbooks, runtime, services, app, metrics, unobserve, head, app_token)


def _web_client(settings: Settings, metrics: Metrics) -> CountingWebClient | None:
    """The bot's Slack client (None without ``SLACK_BOT_TOKEN``: ``wire`` says so in its turn)."""
    token = settings.secrets.slack_bot_token
    if token is None:
        return None
    return CountingWebClient(
        metrics,
        token=token.get_secret_value(),
        base_url=str(settings.slack.api_url),
        timeout=max(1, round(settings.slack.timeout.total_seconds())),
    )


async def _settle(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel what a failed start no longer needs, and collect every outcome (none left unretrieved)."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()  # no effect on a finished task
    await asyncio.gather(*pending, return_exceptions=True)


def _runtime(
    settings: Settings,
    playbooks: Mapping[str, Playbook],
    metrics: Metrics,
    client: CountingWebClient,
    poll_interval_s: float | None,
) -> Runtime:
    """The engine with the Slack notifier and the chart poster as its chat, counted in ``metrics``."""
    # The notifier and the chart poster live on the runtime's database, which the build creates;
    # the build wants a chat: late-bound stand-ins bridge the two (``bot.slack.late``).
    chat, charts = LateChat(), LateCharts()
    runtime = container.build(
        settings,
        playbooks,
        chat=CountingChat(chat, metrics),
        resolve_handle=usergroup_resolver(client),
        on_transition=metrics.on_transition,
        poll_interval_s=poll_interval_s,
        charts=charts,
    )
    notifier = container.slack_notifier(
        settings,
        runtime.store.engine,
        # The renderer takes the card state as a dict; the notifier hands it a read-only mapping.
        lambda state, notification, ctx: plan(dict(state) if state is not None else None, notification, ctx),
        channel_for=runtime.engine.ctx.channel,
        channels=container.thread_channels(settings, playbooks),
        on_call=metrics.slack_call,  # counted with the app's own calls
    )
    runtime.notifier = chat.target = notifier
    runtime.charts = charts.target = container.chart_poster(
        settings, runtime.store.engine, on_call=metrics.slack_call
    )
    return runtime


def _thread_of(threads: ThreadStore) -> ThreadOf:
    async def thread_of(deployment_id: str) -> tuple[str, str] | None:
        for message in await threads.messages(deployment_id):
            if message.key == CARD and message.ts:
                return message.channel, message.ts
        return None

    return thread_of
