"""The replies of a deployment's thread, each rendered from its entry in the card state.

A reply is stored as data under its key (``build``, ``rollout:<step>``, ``approval:<stage>``,
``guard:<step>:<window start>``, ``rollback``, ``lock:<id>``) and redrawn whole from that data
whenever it changes, so an edit in place shows exactly what a fresh post would. The people who must
act are mentioned in the reply where they must act: approvers on a request, the requester when
something failed or waits for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bot.domain import mrkdwn
from bot.domain.notifications import SKIPPED
from bot.slack import actions, blocks, card, limits, sparkline
from bot.slack.blocks import Block, code, mention, text
from bot.slack.outgoing import Outgoing, Priority, RenderContext

MAX_MENTIONS: Final = 15
"""Approvers mentioned by name on a request; more are counted, not pinged."""

Data = dict[str, Any]


def render(key: str, data: Data, state: Data, ctx: RenderContext, priority: Priority) -> Outgoing:
    fallback, out = _RENDERERS[str(data["kind"])](data, state, ctx)
    return Outgoing(key, limits.fit_fallback(fallback), limits.fit_blocks(out), priority)


def _requester(state: Data) -> str:
    return mention(state["deployment"].get("requester"))


def _what(state: Data) -> str:
    dep = state["deployment"]
    return f"{text(dep['service'])} {text(dep['version'])} to {text(dep['env'])}"


# -- build ---------------------------------------------------------------------------------------


def _build(data: Data, state: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    number = f" #{data['number']}" if data.get("number") is not None else ""
    attempt = f" (attempt {data['attempt']})" if int(data.get("attempt", 1)) > 1 else ""
    name = f"*Build{number}*{attempt}"
    url = data.get("url")
    where = f" · {blocks.link(url, 'open in Jenkins')}" if url else ""
    status = str(data.get("state", "queued"))
    tail: str | None = None
    if status == "queued":
        item = f" (queue item {data['queue_item']})" if data.get("queue_item") is not None else ""
        line = f"⏳ {name} queued in Jenkins{item}"
    elif status == "running":
        progress = data.get("progress")
        if isinstance(progress, int | float):
            shown = min(100, round(progress * 100))
            line = f"🔨 {name} running `{sparkline.bar(progress)}` {shown} % of Jenkins' estimate"
        else:
            line = f"🔨 {name} running"
    elif status == "succeeded":
        line = f"✅ {name} succeeded"
    elif status == "skipped":
        line = "⏭️ *Build* skipped: nothing to build (no job, or the artifact exists)"
    elif status == "retrying":
        line = f"🔁 {name} lost, trying again: {text(data.get('reason') or '')}"
    else:
        result = f" ({text(data['result'])})" if data.get("result") else ""
        why = f": {text(data['reason'])}" if data.get("reason") else ""
        line = f"❌ {name} {text(status)}{result}{why}. {_requester(state)}, the deployment stopped here."
        tail = data.get("tail")
    out = [blocks.section(line + where)]
    if tail:
        out.append(blocks.section(f"Console tail:\n{mrkdwn.code_block(tail, limits.SECTION_TEXT - 20)}"))
    return f"Build of {_what(state)}: {text(status)}", out


# -- rollout ------------------------------------------------------------------------------------


def _rollout(data: Data, state: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    strategy = str(state["deployment"].get("strategy", "rolling"))
    step = int(data.get("step", 0))
    if strategy == "canary":
        weight = data.get("weight")
        what = f"*Canary step {step + 1}*" + (f": {int(weight)} % of traffic" if weight is not None else "")
    elif strategy == "blue-green":
        what = "*Blue-green switch*: traffic to the new colour" if step >= 1 else "*New colour* rolling out"
    else:
        what = "*Rollout*"
    status = str(data.get("state", "progress"))
    desired, ready = int(data.get("desired") or 0), int(data.get("ready") or 0)
    if status == "done":
        line = f"✅ {what}: complete" + (f", {ready}/{desired} ready" if desired else "")
    elif status in ("failed", "refused"):
        verb = "refused by the cluster (nothing was changed)" if status == "refused" else "failed"
        line = f"❌ {what} {verb}: {text(data.get('reason') or '')}. {_requester(state)}"
    else:
        line = f"🚢 {what}"
        if desired:
            line += f" `{sparkline.bar(ready / desired)}` {ready}/{desired} ready"
        if data.get("message"):
            line += f"\n{text(data['message'])}"
    return f"Rollout of {_what(state)}: {text(status)}", [blocks.section(line)]


# -- approvals -----------------------------------------------------------------------------------


def _approval(data: Data, state: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    stage = int(data.get("stage", 0))
    approvers = [a for a in data.get("approvers", []) if blocks.is_user_id(a)]
    named = " ".join(mention(a) for a in approvers[:MAX_MENTIONS])
    if len(approvers) > MAX_MENTIONS:
        named += f" and {len(approvers) - MAX_MENTIONS} more"
    needed = int(data.get("needed", 1))
    ask = (
        f"🙋 *Approval needed*, stage {stage + 1}: {needed} from {code(data.get('group', '?'))}"
        f" for {_what(state)}."
    )
    if named and not data.get("outcome"):
        ask += f"\n{named}: please approve or reject."
    if data.get("expires_at") and not data.get("outcome"):
        ask += f"\nExpires {blocks.when(card.parse_time(data['expires_at']))}."
    out = [blocks.section(ask)]
    votes = [v for v in state.get("votes", []) if int(v.get("stage", -1)) == stage]
    if votes:
        out.append(blocks.context(*[_vote(v) for v in votes]))
    decided = card.decision_line(data.get("decision"))
    if decided:
        out.append(blocks.context(decided))
    else:
        value = card.value_for(state)
        out.append(
            blocks.actions(
                blocks.button("Approve", actions.APPROVE, value, "primary"),
                blocks.button("Reject", actions.REJECT, value, "danger"),
            )
        )
    return f"Approval needed for {_what(state)}", out


def _vote(vote: Data) -> str:
    mark = "✅" if vote.get("approve") else "🚫"
    return f"{mark} {mention(vote['user'])}, {blocks.when(card.parse_time(vote.get('at')))}"


# -- the QoS guard -------------------------------------------------------------------------------


VERDICTS: Final = {
    "pass": "✅ *Guard passed*",
    "fail": "❌ *Guard breached*",
    "inconclusive": "⏸️ *Guard inconclusive*",
    SKIPPED: "⏭️ *Guard skipped*",
}


def _window(data: Data, state: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    if data.get("post_rollback"):
        title = "🛡️ *QoS guard*, watching the restored version after the rollback"
    elif str(state["deployment"].get("strategy")) == "canary":
        weight = state.get("weights", {}).get(str(data.get("step")))
        share = f" ({weight} %)" if weight is not None else ""
        title = f"🛡️ *QoS guard*, canary step {int(data.get('step') or 0) + 1}{share}"
    else:
        title = "🛡️ *QoS guard*"
    verdict = data.get("verdict")
    if verdict and verdict.get("verdict") == SKIPPED:
        # Nothing was measured: no tick count, no sparkline, just that the step went on unjudged.
        line = f"{title}\n{VERDICTS[SKIPPED]}: {text(verdict.get('reason') or '')}"
        return f"QoS guard for {_what(state)}: {SKIPPED}", [blocks.section(line)]
    ticks, expected = int(data.get("ticks", 0)), int(data.get("expected", 0))
    title += f" · tick {ticks} of {expected}" if expected else f" · tick {ticks}"
    out = [blocks.section(f"{title}\n`{sparkline.marks(data.get('outcomes', []))}`")]
    if data.get("settling") and not ticks:
        # No tick yet: the checks still see the version before the change. Say so, not nothing.
        lines = "\n".join(f"⏳ {text(line)}" for line in data["settling"])
        first = card.parse_time(data.get("judges_at"))
        out.append(blocks.section(f"{lines}\nThe first check judges from {blocks.when(first)}."))
    for name, check in list(data.get("checks", {}).items()):
        out.append(blocks.section(_check_line(name, check, ctx)))
    if verdict:
        head = VERDICTS.get(str(verdict.get("verdict")), f"*Guard {text(verdict.get('verdict'))}*")
        line = f"{head}: {text(verdict.get('reason') or '')}"
        if data.get("held") or verdict.get("verdict") == "inconclusive":
            line += f"\n{_requester(state)}, the deployment is held: promote it or abort."
        elif verdict.get("verdict") == "fail" and not data.get("post_rollback"):
            line += f"\n{_requester(state)}, rolling back."
        out.append(blocks.section(line))
    decided = card.decision_line(data.get("decision"))
    if decided:
        out.append(blocks.context(decided))
    elif data.get("held") and not data.get("post_rollback"):
        out.append(
            blocks.actions(
                blocks.button("Promote", actions.PROMOTE, card.value_for(state), "primary"),
                card.rollback_button(state, actions.ABORT, "Abort"),
            )
        )
    word = verdict.get("verdict") if verdict else f"tick {ticks}"
    return f"QoS guard for {_what(state)}: {text(word)}", out


def _check_line(name: str, check: Data, ctx: RenderContext) -> str:
    statuses = check.get("statuses", [])
    mark = sparkline.MARKS.get(statuses[-1], "·") if statuses else "·"
    bounds = [f"min {check['min']:g}"] if check.get("min") is not None else []
    bounds += [f"max {check['max']:g}"] if check.get("max") is not None else []
    spark = sparkline.sparkline(check.get("values", []), (check.get("min"), check.get("max")))
    url = blocks.prometheus_graph(ctx.prometheus_url, check.get("query"))
    graph = f" · {blocks.link(url, 'graph')}" if url else ""
    return (
        f"{mark} {code(name)} `{spark}` `{sparkline.marks(statuses)}` ({', '.join(bounds) or 'no bounds'})"
        f"{graph}\n{text(check.get('line') or '')}"
    )


# -- rollback, locks, notes ----------------------------------------------------------------------


def _rollback(data: Data, state: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    target = code(data["to_version"]) if data.get("to_version") else "the previous version"
    by = mention(data["by"]) if data.get("by") else "the QoS guard"
    status = str(data.get("state", "started"))
    if status == "done":
        line = f"↩️ *Rolled back*: {code(data.get('version') or '?')} is live again."
    elif status == "failed":
        why = text(data.get("reason") or "")
        line = f"🆘 *Rollback failed*: {why}. {_requester(state)}, a person must look."
    else:
        line = f"⏪ *Rolling back* to {target}, asked by {by}: {text(data.get('reason') or '')}"
    if status != "started":
        line += f"\n_Asked by {by}: {text(data.get('reason') or '')}_"
    return f"Rollback of {_what(state)}: {text(status)}", [blocks.section(line)]


def _lock(data: Data, state: Data | None, ctx: RenderContext) -> tuple[str, list[Block]]:
    kind = text(data.get("lock_kind") or "?")
    service = f" for {code(data['service'])}" if data.get("service") else ""
    unlocked = data.get("unlocked")
    out: list[Block] = []
    if "by" in data:  # the lock itself was seen (an unlock alone knows only who lifted it)
        out.append(
            blocks.section(
                f"🔒 *{code(data['env'])} locked*{service} ({kind}) by {mention(data.get('by'))}: "
                f"{text(data.get('reason') or '')}"
            )
        )
    if unlocked:
        why = f": {text(unlocked['reason'])}" if unlocked.get("reason") else ""
        line = (
            f"🔓 {code(data['env'])}{service} unlocked ({kind}) by {mention(unlocked.get('by'))}, "
            f"{blocks.when(card.parse_time(unlocked.get('at')))}{why}"
        )
        out.append(blocks.context(line) if out else blocks.section(line))
    elif data.get("lock_kind") == "guard" and state is not None:
        value = card.value_for(state, data.get("lock_id"))
        out.append(blocks.actions(blocks.button("Unlock", actions.UNLOCK, value)))
    verb = "unlocked" if unlocked else "locked"
    return f"{text(data['env'])} {verb} ({kind})", out


def lock_post(data: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    """A lock's message outside any thread (a manual lock of a whole environment)."""
    fallback, out = _lock(data, None, ctx)
    return limits.fit_fallback(fallback), list(limits.fit_blocks(out))


def _note(data: Data, state: Data, ctx: RenderContext) -> tuple[str, list[Block]]:
    body = str(data.get("text") or " ")
    return body, [blocks.section(body)]


_RENDERERS: Final[dict[str, Callable[[Data, Data, RenderContext], tuple[str, list[Block]]]]] = {
    "build": _build,
    "rollout": _rollout,
    "approval": _approval,
    "window": _window,
    "rollback": _rollback,
    "lock": _lock,
    "note": _note,
}
