"""``/deploy`` and ``/rollback``: parse, ack, then the engine or the store in the background.

What is pure is answered in the ack itself (parse errors, help, unknown service or environment:
the playbooks are in memory). Everything else acks at once — "working on it" for what changes
something, nothing for a question — and the work runs in a task the app keeps; the answer comes
through ``respond()`` (the command's ``response_url``), ephemeral. The store is never touched
before the ack.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.domain import commands
from bot.domain.commands import (
    Cancel,
    Command,
    Deploy,
    Envs,
    Help,
    History,
    Lock,
    ParseError,
    Rollback,
    Status,
    Unlock,
)
from bot.slack import answers, keys
from bot.slack.answers import Answer
from bot.slack.services import Services

log = logging.getLogger("shipthread.slack")

COMMANDS = ("/deploy", "/rollback")
"""The slash commands the app registers (the manifest must declare exactly these)."""

_CHANGES = (Deploy, Rollback, Lock, Unlock, Cancel)


def register(app: AsyncApp, s: Services) -> None:
    async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        parsed = commands.parse(str(body.get("command", "")), str(body.get("text", "")))
        pure = _pure_answer(s, parsed)
        if pure is not None:
            await ack(**pure.payload())
            return
        assert not isinstance(parsed, ParseError)
        if isinstance(parsed, _CHANGES):
            await ack(**answers.working(_describe(parsed)).payload())
        else:
            await ack()
        s.background.spawn(_run(s, parsed, body, respond), f"command {body.get('command')}")

    for name in COMMANDS:
        app.command(name)(on_command)


def _pure_answer(s: Services, parsed: Command | ParseError) -> Answer | None:
    """The answer when it needs nothing but the text and the playbooks; None when work is needed."""
    if isinstance(parsed, ParseError):
        return answers.parse_error(parsed)
    if isinstance(parsed, Help):
        return answers.help_text(parsed.topic)
    service = getattr(parsed, "service", None)
    if isinstance(service, str) and service not in s.playbooks:
        if isinstance(parsed, Lock | Unlock):
            return None  # a lock may be set on a service before its playbook exists
        return answers.unknown_service(service, s.playbooks)
    env = getattr(parsed, "env", None)
    if isinstance(env, str):
        if isinstance(service, str):
            book = s.playbooks[service]
            if env not in book.environments:
                return answers.unknown_environment(service, env, book.environments)
        elif not any(env in book.environments for book in s.playbooks.values()):
            known = sorted({e for book in s.playbooks.values() for e in book.environments})
            return answers.unknown_environment("any service", env, known)
    return None


def _describe(cmd: Command) -> str:
    if isinstance(cmd, Deploy):
        return f"Deploying {cmd.service} {cmd.version}" + (f" to {cmd.env}" if cmd.env else "")
    if isinstance(cmd, Rollback):
        return f"Rolling back {cmd.service}" + (f" to {cmd.to_version}" if cmd.to_version else "")
    if isinstance(cmd, Lock):
        return f"Locking {cmd.env}"
    if isinstance(cmd, Unlock):
        return f"Unlocking {cmd.env}"
    if isinstance(cmd, Cancel):
        return f"Cancelling {cmd.deployment_id}"
    return "Working on it"


async def _run(s: Services, cmd: Command, body: dict[str, Any], respond: AsyncRespond) -> None:
    user = str(body.get("user_id", ""))
    channel = str(body.get("channel_id") or "") or None
    ran = await s.once.run(keys.command_key(body), lambda: answer_command(s, cmd, user, channel))
    if ran.repeat:
        s.metrics.duplicates.labels("command").inc()
    answer = ran.answer
    if answer is None:
        return
    try:
        await respond(**answer.payload())
    except Exception as exc:  # the response_url expired or Slack is down: the work is done anyway
        log.warning("could not answer %s: %s", body.get("command"), exc)


async def answer_command(s: Services, cmd: Command, user: str, channel: str | None) -> Answer | None:
    """Do what the command asks (engine or store) and say how it went."""
    engine, store = s.engine, s.store
    if isinstance(cmd, Status):
        active = await store.active_deployments(cmd.service)
        locks = await store.active_locks()
        return answers.status(active, locks, s.now(), await s.links(active), cmd.service)
    if isinstance(cmd, History):
        past = await store.history(cmd.service, cmd.env, limit=answers.HISTORY_LIMIT)
        return answers.history(cmd.service, cmd.env, past, await s.links(past))
    if isinstance(cmd, Envs):
        book = s.playbooks[cmd.service]
        live = {env: await store.last_succeeded(cmd.service, env) for env in book.environments}
        return answers.envs(book, live)
    if isinstance(cmd, Deploy):
        result = await engine.deploy(cmd, user, channel)
    elif isinstance(cmd, Rollback):
        result = await engine.rollback(cmd, user, channel)
    elif isinstance(cmd, Lock):
        result = await engine.lock(cmd.env, cmd.service, cmd.reason, user, channel)
    elif isinstance(cmd, Unlock):
        return await unlock(s, cmd.env, cmd.service, user, channel)
    elif isinstance(cmd, Cancel):
        result = await engine.cancel(cmd.deployment_id, user, None, channel)
    else:  # Help never gets here: it is answered in the ack
        return answers.help_text(None)
    return answers.engine_outcome(result.ok, result.message, channel)


async def unlock(s: Services, env: str, service: str | None, user: str, channel: str | None) -> Answer | None:
    """Lift the locks there; the engine decides who may (``approvals.may_unlock``) and audits."""
    result = await s.engine.unlock(env, service, user, channel)
    return answers.engine_outcome(result.ok, result.message, channel)
