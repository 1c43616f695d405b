"""The parent card of a deployment's thread: what it is, where it stands, and what one can do now.

Rendered from the card state alone (``bot.slack.thread`` folds notifications into it), so the
card is the same whichever notification caused the redraw. Its buttons follow the phase; once a
decision is made, the buttons give way to who did what and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from bot.domain import buttons
from bot.domain.phases import Phase
from bot.slack import actions, blocks, limits
from bot.slack.blocks import Block, code, mention, text
from bot.slack.outgoing import CARD, Outgoing, Priority, RenderContext

PHASES: Final[dict[Phase, tuple[str, str]]] = {
    Phase.REQUESTED: ("🆕", "Requested"),
    Phase.AWAITING_APPROVAL: ("⏳", "Awaiting approval"),
    Phase.BUILDING: ("🔨", "Building"),
    Phase.DEPLOYING: ("🚢", "Deploying"),
    Phase.VERIFYING: ("🔍", "Verifying"),
    Phase.SUCCEEDED: ("✅", "Succeeded"),
    Phase.REJECTED: ("🚫", "Rejected"),
    Phase.EXPIRED: ("⌛", "Expired"),
    Phase.CANCELLED: ("✋", "Cancelled"),
    Phase.FAILED: ("❌", "Failed"),
    Phase.ROLLING_BACK: ("⏪", "Rolling back"),
    Phase.ROLLED_BACK: ("↩️", "Rolled back"),
    Phase.ROLLBACK_FAILED: ("🆘", "Rollback failed: a person must look"),
}
"""A word and an emoji for every phase (a missing phase fails the card test)."""

CANCELLABLE: Final = buttons.MEANINGFUL[buttons.Button.CANCEL]
"""Nothing is deployed yet: the deployment can simply be cancelled."""
ROLLBACKABLE: Final = buttons.MEANINGFUL[buttons.Button.ROLLBACK]
"""Something new is (or may be) live: the way back is a rollback."""

MAX_CHECK_LINKS: Final = 8


def phase_label(phase: Phase, paused: bool = False) -> str:
    emoji, word = PHASES[phase]
    if paused and not phase.terminal:
        return f"⏸️ {word}, held for a decision"
    return f"{emoji} {word}"


def parse_time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _elapsed(dep: dict[str, Any], now: datetime) -> str:
    created = parse_time(dep.get("created_at"))
    if created is None:
        return "?"
    end = parse_time(dep.get("updated_at")) if Phase(dep["phase"]).terminal else now
    seconds = ((end or now) - created).total_seconds()
    # Whole minutes once past one: the card is not redrawn for every second that passes.
    return blocks.duration(seconds if seconds < 60 else seconds // 60 * 60)


def _strategy(state: dict[str, Any]) -> str:
    dep = state["deployment"]
    strategy, step = str(dep.get("strategy", "rolling")), int(dep.get("step", 0))
    if strategy == "canary":
        weight = state.get("weights", {}).get(str(step))
        share = f", {weight} %" if weight is not None else ""
        return f"canary, step {step + 1}{share}"
    if strategy == "blue-green":
        return "blue-green, " + ("traffic switched" if step >= 1 else "new colour rolling out")
    return text(strategy)


def _approvals(state: dict[str, Any]) -> list[str]:
    lines = []
    for vote in state.get("votes", []):
        mark = "✅ approved" if vote.get("approve") else "🚫 rejected"
        line = f"Stage {int(vote['stage']) + 1}: {mark} by {mention(vote['user'])}, {_at(vote.get('at'))}"
        if vote.get("reason"):
            line += f": {text(vote['reason'])}"
        lines.append(line)
    return lines


def _at(value: object) -> str:
    return blocks.when(parse_time(value))


def _links(state: dict[str, Any], ctx: RenderContext) -> list[str]:
    parts = []
    build = state.get("replies", {}).get(_build_key(state)) or {}
    if build.get("url"):
        number = f" #{build['number']}" if build.get("number") is not None else ""
        parts.append("🔧 " + blocks.link(build["url"], f"Jenkins build{number}"))
    checks: dict[str, str] = state.get("checks", {})
    for name, query in list(checks.items())[:MAX_CHECK_LINKS]:
        url = blocks.prometheus_graph(ctx.prometheus_url, query)
        if url:
            parts.append("📈 " + blocks.link(url, name))
    if ctx.grafana_url:
        parts.append("📊 " + blocks.link(ctx.grafana_url, "Grafana"))
    return parts


def _build_key(state: dict[str, Any]) -> str:
    return str(state.get("build_key", "build"))


def value_for(state: dict[str, Any], lock_id: int | None = None) -> str:
    dep = state["deployment"]
    # Step and stage: a Promote or Approve judges the moment it was drawn at (``bot.domain.buttons``).
    return actions.encode(
        actions.ButtonValue(
            str(dep["id"]),
            int(dep["version_no"]),
            lock_id,
            step=int(dep.get("step", 0)),
            stage=int(dep.get("approval_stage", 0)),
        )
    )


def rollback_button(
    state: dict[str, Any], action_id: str = actions.ROLLBACK, label: str = "Roll back"
) -> Block:
    """Roll back (or Abort), with a confirm dialog where ``actions.needs_confirm`` says so."""
    dep = state["deployment"]
    dialog = None
    if actions.needs_confirm(str(dep["env"]), bool(state.get("approvals_required"))):
        target = code(dep["previous_version"]) if dep.get("previous_version") else "the previous version"
        dialog = blocks.confirm(
            f"{label} in {dep['env']}?",
            f"{code(dep['service'])} {code(dep['version'])} goes back to {target} in {code(dep['env'])}.",
            label,
        )
    return blocks.button(label, action_id, value_for(state), "danger", dialog)


def _buttons(state: dict[str, Any]) -> list[Block]:
    dep = state["deployment"]
    phase = Phase(dep["phase"])
    if phase in CANCELLABLE:
        return [blocks.actions(blocks.button("Cancel", actions.CANCEL, value_for(state)))]
    if phase in ROLLBACKABLE:
        elements = []
        if dep.get("paused"):
            elements.append(blocks.button("Promote", actions.PROMOTE, value_for(state), "primary"))
            elements.append(rollback_button(state, actions.ABORT, "Abort"))
        else:
            elements.append(rollback_button(state))
        return [blocks.actions(*elements)]
    return []


def decision_line(decision: dict[str, Any] | None) -> str | None:
    """``✋ Cancelled by @ann, 2024-05-01 14:02 UTC``: what replaced the buttons."""
    if not decision:
        return None
    line = f"{decision['what']} by {mention(decision.get('by'))}, {_at(decision.get('at'))}"
    if decision.get("reason"):
        line += f": {text(decision['reason'])}"
    return line


def render(state: dict[str, Any], ctx: RenderContext, priority: Priority) -> Outgoing:
    dep = state["deployment"]
    phase = Phase(dep["phase"])
    label = phase_label(phase, bool(dep.get("paused")))
    lead = "↩️ Rollback: " if dep.get("is_rollback") else "🚀 "
    title = f"{lead}{dep['service']} {dep['version']} → {dep['env']}"
    version = code(dep["version"])
    if dep.get("previous_version"):
        version += f" (was {code(dep['previous_version'])})"
    fields = [
        f"*Phase*\n{label}",
        f"*Version*\n{version}",
        f"*Environment*\n{code(dep['env'])}",
        f"*Requested by*\n{mention(dep.get('requester'))}",
        f"*Strategy*\n{_strategy(state)}",
        f"*Elapsed*\n{_elapsed(dep, ctx.now)}",
    ]
    out: list[Block] = [blocks.header(title), blocks.fields_section(fields)]
    if dep.get("emergency_reason"):
        out.append(
            blocks.section(f"🚨 *Emergency deployment*, approvals skipped: {text(dep['emergency_reason'])}")
        )
    approvals = _approvals(state)
    pending = state.get("pending_approval")
    if pending and int(pending.get("needed", 0)) > 0:
        approvals.append(
            f"Stage {int(pending['stage']) + 1}: waiting for {int(pending['needed'])} more from "
            f"{code(pending['group'])}"
        )
    if approvals:
        out.append(blocks.section("*Approvals*\n" + "\n".join(approvals)))
    if dep.get("reason") and (phase.terminal or phase is Phase.ROLLING_BACK or dep.get("paused")):
        out.append(blocks.section(f"*Why:* {text(dep['reason'])}"))
    for lock in state.get("locks", {}).values():
        if not lock.get("unlocked"):
            out.append(
                blocks.context(
                    f"🔒 {code(lock['env'])} is locked ({text(lock['kind'])}): {text(lock['reason'])}"
                )
            )
    links = _links(state, ctx)
    if links:
        out.append(blocks.context(*links))
    decided = decision_line(state.get("decision"))
    if decided and phase.terminal:
        out.append(blocks.context(decided))
    out += _buttons(state)
    out.append(blocks.context(f"Deployment {code(dep['id'])}"))
    fallback = f"{text(dep['service'])} {text(dep['version'])} to {text(dep['env'])}: {label}"
    return Outgoing(CARD, limits.fit_fallback(fallback), limits.fit_blocks(out), priority)
