"""Modal submissions: Reject with its reason, Roll back with an optional one.

The reason check is pure and goes in the ack (``response_action: errors`` keeps the modal open
with the complaint under the field). Then the modal closes and the work runs in the background:
claimed once per view id and hash, judged against the state the button was rendered for (a
deployment that moved on meanwhile is not rejected or rolled back by an old modal), handed to the
engine, and answered ephemerally in the channel (and thread) the button was in.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.slack import actions, answers, keys, modals
from bot.slack.answers import Answer
from bot.slack.listeners_actions import audit_click, rollback_of, stale_answer
from bot.slack.services import Services

log = logging.getLogger("shipthread.slack")


def register(app: AsyncApp, s: Services) -> None:
    async def on_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        reason = modals.reason_of(view)
        if view.get("callback_id") == modals.REJECT and not reason:
            await ack(
                response_action="errors", errors={modals.REASON_BLOCK: "Say why: the requester reads it."}
            )
            return
        await ack()
        s.background.spawn(_submitted(s, body, reason), f"view {view.get('callback_id')}")

    for callback_id in sorted(modals.CALLBACK_IDS):
        app.view(callback_id)(on_submit)


async def _submitted(s: Services, body: dict[str, Any], reason: str) -> None:
    view = body.get("view") or {}
    context = modals.Context.decode(view.get("private_metadata"))
    user = str((body.get("user") or {}).get("id", ""))
    if context is None:
        log.warning("a %s submission without its context", view.get("callback_id"))
        return
    ran = await s.once.run(
        keys.view_key(body), lambda: _decide(s, str(view.get("callback_id")), context, user, reason)
    )
    if ran.repeat:
        s.metrics.duplicates.labels("view").inc()
    answer = ran.answer
    if answer is not None and context.channel:
        try:
            await s.client.chat_postEphemeral(
                channel=context.channel,
                user=user,
                text=answer.text,
                blocks=list(answer.blocks) or None,
                thread_ts=context.thread_ts,
            )
        except Exception as exc:
            log.warning("could not answer a modal: %s", exc)


async def _decide(
    s: Services, callback_id: str, context: modals.Context, user: str, reason: str
) -> Answer | None:
    dep = await s.store.get_deployment(context.deployment_id)
    if dep is None:
        return answers.outcome(False, f"there is no deployment {context.deployment_id}")
    action_id = actions.REJECT if callback_id == modals.REJECT else actions.ROLLBACK
    # The modal carries the version_no only: Reject and Roll back keep their meaning as the
    # deployment moves on (``bot.domain.buttons``), and the engine checks the rest.
    stale = await stale_answer(s, dep, action_id, context.version_no)
    if stale is not None:
        await audit_click(
            s, user, action_id, context.channel, dep.id, f"refused: stale modal (now {dep.phase})"
        )
        return stale
    if action_id == actions.REJECT:
        result = await s.engine.reject(dep.id, user, reason, context.channel)
        return answers.engine_outcome(result.ok, result.message, context.channel)
    return await rollback_of(s, dep, user, reason, context.channel)
