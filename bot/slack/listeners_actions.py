"""Button clicks in threads and on App Home: ack, then decide in the background, once per click.

Reject and Roll back open a modal first (the ``trigger_id`` lives 3 s and is single-use) and act
on its submission (``bot.slack.listeners_views``). Every other click is claimed in the store
(``bot.slack.keys.click_key``: a double click or a redelivery is the same key), checked for
staleness — the button's value carries the ``version_no`` it was rendered for, and a deployment
that has moved to a phase where the button means nothing gets an ephemeral "it is now …" and no
change — then handed to the engine, whose policy (approver groups, four-eyes, break-glass)
decides and audits. The clicker gets the outcome as an ephemeral message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.domain.audit import AuditEntry
from bot.domain.buttons import Button, still_applies
from bot.domain.commands import Rollback
from bot.domain.deployment import Deployment
from bot.domain.phases import Phase
from bot.slack import actions, answers, keys, modals
from bot.slack.answers import Answer
from bot.slack.services import Services

log = logging.getLogger("shipthread.slack")

ALL_ACTIONS: Final = re.compile("^(" + "|".join(re.escape(a) for a in sorted(actions.ACTION_IDS)) + ")$")

BUTTONS: Final[Mapping[str, Button]] = {
    actions.APPROVE: Button.APPROVE,
    actions.REJECT: Button.REJECT,
    actions.CANCEL: Button.CANCEL,
    actions.ROLLBACK: Button.ROLLBACK,
    actions.PROMOTE: Button.PROMOTE,
    actions.ABORT: Button.ABORT,
}
"""Our action ids for the domain's buttons (whose staleness rule is ``bot.domain.buttons``)."""

_WHAT: Final[Mapping[str, str]] = {
    actions.APPROVE: "approving",
    actions.REJECT: "rejecting",
    actions.CANCEL: "cancelling",
    actions.ROLLBACK: "rolling back",
    actions.PROMOTE: "promoting",
    actions.ABORT: "aborting",
    actions.UNLOCK: "unlocking",
}
_AUDIT_NAME: Final[Mapping[str, str]] = {a: a.removeprefix("shipthread.") for a in actions.ACTION_IDS}


def register(app: AsyncApp, s: Services) -> None:
    async def on_click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        value = actions.decode(action.get("value"))
        s.background.spawn(
            _click(s, body, action, respond),
            f"click {action.get('action_id')}",
            value.deployment_id if value else None,
            # Reject and Roll back open a modal: its trigger_id dies 3 s after the click.
            urgent=action.get("action_id") in (actions.REJECT, actions.ROLLBACK),
        )

    app.action(ALL_ACTIONS)(on_click)


def _channel(body: Mapping[str, Any]) -> str | None:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return str(channel) if channel else None


async def _click(s: Services, body: dict[str, Any], action: Mapping[str, Any], respond: AsyncRespond) -> None:
    action_id = str(action.get("action_id", ""))
    user = str((body.get("user") or {}).get("id", ""))
    channel = _channel(body)
    value = actions.decode(action.get("value"))
    if value is None:
        await _tell(s, body, respond, answers.outcome(False, "this button carries no deployment I know"))
        return
    if action_id in (actions.REJECT, actions.ROLLBACK):
        # The modal first: nothing slow may come between the click and views.open.
        await _open_modal(s, body, action_id, value, respond)
        return
    ran = await s.once.run(keys.click_key(body, action), lambda: _decide(s, action_id, value, user, channel))
    if ran.answer is not None:
        await _tell(s, body, respond, ran.answer)
    if ran.repeat:  # counted last: whoever waits on the count sees the answer sent and the audit row
        await audit_click(s, user, action_id, channel, value.deployment_id, "ignored: repeated click")
        s.metrics.duplicates.labels("click").inc()
    if not ran.repeat and (body.get("container") or {}).get("type") == "view":
        from bot.slack.listeners_events import publish_home  # the Home tab shows the change at once

        await publish_home(s, user)


async def _decide(
    s: Services, action_id: str, value: actions.ButtonValue, user: str, channel: str | None
) -> Answer | None:
    if action_id == actions.UNLOCK:
        return await _unlock(s, value, user, channel)
    dep = await s.store.get_deployment(value.deployment_id)
    if dep is None:
        return answers.outcome(False, f"there is no deployment {value.deployment_id}")
    stale = await stale_answer(s, dep, action_id, value.version_no, step=value.step, stage=value.stage)
    if stale is not None:
        await audit_click(s, user, action_id, channel, dep.id, f"refused: stale button (now {dep.phase})")
        return stale
    engine = s.engine
    if action_id == actions.APPROVE:
        result = await engine.approve(dep.id, user, channel, stage=value.stage)
    elif action_id == actions.CANCEL:
        result = await engine.cancel(dep.id, user, None, channel)
    elif action_id == actions.PROMOTE:
        result = await engine.promote(dep.id, user, channel, step=value.step)
    elif action_id == actions.ABORT:
        result = await engine.rollback(
            Rollback(dep.service, env=dep.env, reason="aborted from the thread"), user, channel, dep.id
        )
    else:
        return answers.outcome(False, f"unknown button {action_id}")
    return answers.engine_outcome(result.ok, result.message, channel)


async def stale_answer(
    s: Services,
    dep: Deployment,
    action_id: str,
    rendered_for: int,
    *,
    step: int | None = None,
    stage: int | None = None,
) -> Answer | None:
    """An answer when the button no longer applies to ``dep``; None when it still does.

    ``rendered_for`` is the button's ``version_no``, ``step`` and ``stage`` the canary step and
    approval stage it was drawn at (None on buttons drawn before they carried them).
    """
    button = BUTTONS.get(action_id)
    if button is None or not still_applies(button, dep, rendered_for, step=step, stage=stage):
        return answers.stale(dep, _WHAT.get(action_id, "this"))
    if action_id == actions.ROLLBACK and dep.phase is Phase.SUCCEEDED:
        last = await s.store.last_succeeded(dep.service, dep.env)
        if last is None or last.id != dep.id or dep.previous_version is None:
            return answers.stale(dep, "rolling it back (a later release replaced it)")
    return None


async def rollback_of(
    s: Services, dep: Deployment, user: str, reason: str, channel: str | None
) -> Answer | None:
    """Roll back what ``dep`` deployed: the live deployment itself, or its finished release.

    The engine gets ``dep``'s id and refuses unless ``dep`` is still what a rollback would undo
    (so a Roll back on an old card never undoes whatever is in flight now).
    """
    cmd = Rollback(dep.service, env=dep.env, reason=reason or None)
    result = await s.engine.rollback(cmd, user, channel, dep.id)
    return answers.engine_outcome(result.ok, result.message, channel)


async def _unlock(s: Services, value: actions.ButtonValue, user: str, channel: str | None) -> Answer | None:
    if value.lock_id is None:
        return answers.outcome(False, "this button names no lock")
    # That lock only (not every lock of its environment); the engine decides who may and audits.
    result = await s.engine.unlock_lock(value.lock_id, user, channel)
    return answers.engine_outcome(result.ok, result.message, channel)


async def _open_modal(
    s: Services, body: Mapping[str, Any], action_id: str, value: actions.ButtonValue, respond: AsyncRespond
) -> None:
    container = body.get("container") or {}
    context = modals.Context(
        value.deployment_id,
        value.version_no,
        _channel(body),
        container.get("thread_ts") or container.get("message_ts"),
    )
    view = modals.reject(context) if action_id == actions.REJECT else modals.rollback(context)
    try:
        await s.client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)
    except Exception as exc:  # an expired trigger or a 429 (never retried: the trigger would die)
        log.warning("could not open the %s modal: %s", action_id, exc)
        await _tell(s, body, respond, answers.click_again())


async def _tell(s: Services, body: Mapping[str, Any], respond: AsyncRespond, answer: Answer) -> None:
    """The clicker's private answer: through the response_url, or as an ephemeral post."""
    try:
        if body.get("response_url"):
            await respond(**answer.payload(), replace_original=False)
            return
        channel = _channel(body)
        user = (body.get("user") or {}).get("id")
        if channel and user:
            await s.client.chat_postEphemeral(
                channel=channel, user=user, text=answer.text, blocks=list(answer.blocks) or None
            )
    except Exception as exc:
        log.warning("could not answer a click: %s", exc)


async def audit_click(
    s: Services, user: str, action_id: str, channel: str | None, target: str, outcome: str
) -> None:
    name = _AUDIT_NAME.get(action_id, action_id)
    await s.store.record_audit(AuditEntry(s.now(), user, name, channel, target, outcome, {"via": "button"}))
