"""What Shipthread answers a person, privately: command results, usage, lists, refusals.

Pure functions from typed values to an ``Answer`` (fallback text plus blocks), so every answer can
be tested without Slack and every string a person or CI wrote goes through ``bot.slack.blocks``'
escaping helpers. The listeners send them as ephemeral messages (the ack body or ``respond()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.domain import commands, mrkdwn
from bot.domain.deployment import Deployment
from bot.domain.locks import Lock
from bot.domain.message import Message
from bot.domain.phases import Phase
from bot.domain.playbook import Playbook
from bot.slack import blocks as b
from bot.slack import limits

HISTORY_LIMIT = 10
"""How many past deployments ``/deploy history`` lists."""

_PHASE_EMOJI = {
    Phase.SUCCEEDED: ":white_check_mark:",
    Phase.ROLLED_BACK: ":rewind:",
    Phase.FAILED: ":x:",
    Phase.ROLLBACK_FAILED: ":rotating_light:",
    Phase.REJECTED: ":no_entry:",
    Phase.EXPIRED: ":hourglass:",
    Phase.CANCELLED: ":heavy_multiplication_x:",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """An ephemeral answer: ``text`` is the fallback (already mrkdwn), ``blocks`` what Slack shows."""

    text: str
    blocks: tuple[dict[str, Any], ...] = ()
    acted: bool = False
    """True when it reports a change (an accepted engine call): the delivery's key is then spent,
    and a repeat of it gets this answer again instead of acting twice."""

    def payload(self) -> dict[str, Any]:
        """The body for ``ack()``/``respond()``: ephemeral, with blocks when there are any."""
        body: dict[str, Any] = {"response_type": "ephemeral", "text": limits.fit_fallback(self.text)}
        if self.blocks:
            body["blocks"] = list(self.blocks)
        return body


def _answer(lines: Sequence[str]) -> Answer:
    text = "\n".join(lines)
    return Answer(text, limits.fit_blocks([b.section(line) for line in _chunks(lines)]))


def _chunks(lines: Sequence[str], size: int = limits.SECTION_TEXT - 100) -> list[str]:
    """Lines packed into section-sized texts, so a long list becomes several sections, not a cut."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > size:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def render(message: Message | str) -> str:
    """An engine message as mrkdwn: a ``Message`` renders its mentions; a bare string is escaped."""
    return mrkdwn.render(message) if isinstance(message, Message) else mrkdwn.escape(message)


def engine_outcome(ok: bool, message: Message | str, channel: str | None) -> Answer | None:
    """The answer to an engine call, or None when the engine already told the person.

    The engine announces each refusal itself (a ``Refused`` notification, which the notifier posts
    as an ephemeral message in ``channel``): answering it here again would say it twice.
    """
    if not ok and channel:
        return None
    return outcome(ok, message)


def outcome(ok: bool, message: Message | str) -> Answer:
    mark = ":white_check_mark:" if ok else ":no_entry_sign:"
    return replace(_answer([f"{mark} {render(message)}"]), acted=ok)


def working(what: str) -> Answer:
    """The immediate ack of a command that needs the engine or the store."""
    return Answer(f":hourglass_flowing_sand: {b.text(what)}…")


def duplicate(earlier: str | None = None) -> Answer:
    """A repeat of a request already handled; ``earlier`` is the answer it got (mrkdwn, as sent)."""
    said = ":information_source: Already handled: this request was received before."
    return _answer([said, earlier] if earlier else [said])


def not_now(why: str, *, transient: bool) -> Answer:
    """Nothing was done because something it needed could not be checked (a Slack blip)."""
    then = "Nothing was done; try again in a moment." if transient else "Nothing was done."
    return _answer([f":warning: {b.text(why)}.", then])


def click_again() -> Answer:
    """The modal could not open in the 3 s its trigger lives (Slack was slow or rate-limited us)."""
    return Answer(":warning: Slack did not open the form in time: nothing was done, click the button again.")


def parse_error(error: commands.ParseError) -> Answer:
    return _answer([f":warning: {b.text(error.message)}", f"Usage: {b.code(error.usage)}"])


def help_text(topic: str | None) -> Answer:
    if topic is None:
        return _answer(["*Shipthread commands*", *(b.code(u) for u in commands.USAGES.values())])
    return _answer([f"Usage: {b.code(commands.USAGES[topic])}"])


def unknown_service(service: str, known: Iterable[str]) -> Answer:
    names = ", ".join(b.code(n) for n in sorted(known)) or "none yet (no playbooks)"
    return _answer([f":grey_question: There is no service {b.code(service)}.", f"Services: {names}"])


def unknown_environment(service: str, env: str, known: Iterable[str]) -> Answer:
    names = ", ".join(b.code(n) for n in known)
    return _answer(
        [f":grey_question: {b.code(service)} has no environment {b.code(env)}.", f"Environments: {names}"]
    )


def stale(dep: Deployment, what: str) -> Answer:
    """A click on a button rendered for an earlier state: say what the deployment does now."""
    return _answer(
        [
            f":information_source: Nothing done: {b.code(dep.id)} ({b.code(dep.service)} "
            f"{b.code(dep.version)} to {b.code(dep.env)}) is now *{b.text(_phase(dep))}*, "
            f"so {b.text(what)} no longer applies."
        ]
    )


def _phase(dep: Deployment) -> str:
    phase = dep.phase.value.replace("_", " ")
    return f"{phase} (paused, waiting for a person)" if dep.paused and not dep.phase.terminal else phase


def _ago(now: datetime, at: datetime) -> str:
    return b.duration((now - at).total_seconds())


def _link(links: Mapping[str, str], dep: Deployment) -> str:
    url = links.get(dep.id)
    return b.link(url, "thread") if url else ""


def _lock_line(lock: Lock, now: datetime) -> str:
    scope = f"{b.code(lock.env)}" + (f"/{b.code(lock.service)}" if lock.service else " (all services)")
    return (
        f":lock: {scope} — {b.text(lock.kind.value)} lock by {b.mention(lock.author)}, "
        f"{_ago(now, lock.created_at)} ago: {b.text(lock.reason)}"
    )


def status(
    active: Sequence[Deployment],
    locks: Sequence[Lock],
    now: datetime,
    links: Mapping[str, str],
    service: str | None = None,
) -> Answer:
    """``/deploy status [service]``: what is in flight, and what is locked."""
    scope = f" of {b.code(service)}" if service else ""
    lines = [f"*Active deployments{scope}*"]
    for dep in sorted(active, key=lambda d: d.created_at):
        lines.append(
            f"• {b.code(dep.id)} {b.code(dep.service)} {b.code(dep.version)} → {b.code(dep.env)}: "
            f"*{b.text(_phase(dep))}* for {_ago(now, dep.updated_at)}, by {b.mention(dep.requester)} "
            f"{_link(links, dep)}".rstrip()
        )
    if not active:
        lines.append("_none_")
    shown = [lk for lk in locks if service is None or lk.service in (None, service)]
    lines.append("*Locks*")
    lines.extend(_lock_line(lk, now) for lk in shown)
    if not shown:
        lines.append("_none_")
    return _answer(lines)


def history(
    service: str, env: str | None, deployments: Sequence[Deployment], links: Mapping[str, str]
) -> Answer:
    """``/deploy history <service> [env]``: version, who, when, outcome, duration, thread."""
    where = f" in {b.code(env)}" if env else ""
    lines = [f"*Last deployments of {b.code(service)}{where}*"]
    for dep in deployments[:HISTORY_LIMIT]:
        took = b.duration((dep.updated_at - dep.created_at).total_seconds())
        mark = _PHASE_EMOJI.get(dep.phase, ":arrows_counterclockwise:")
        kind = " (rollback)" if dep.is_rollback else ""
        lines.append(
            f"{mark} {b.code(dep.version)}{kind} → {b.code(dep.env)} by {b.mention(dep.requester)}, "
            f"{b.when(dep.created_at)}: *{b.text(_phase(dep))}* in {took} {_link(links, dep)}".rstrip()
        )
    if not deployments:
        lines.append("_no deployments yet_")
    return _answer(lines)


def envs(playbook: Playbook, live: Mapping[str, Deployment | None]) -> Answer:
    """``/deploy envs <service>``: each environment, how it deploys and what last succeeded there."""
    lines = [f"*Environments of {b.code(playbook.service)}*"]
    for name, env in playbook.environments.items():
        approvals = ", ".join(f"{s.count}× {b.text(s.group)}" for s in env.approvals) or "none"
        last = live.get(name)
        running = (
            f"{b.code(last.version)} since {b.when(last.updated_at)}" if last else "_nothing deployed yet_"
        )
        default = " (default)" if name == playbook.default_environment else ""
        lines.append(
            f"• {b.code(name)}{default}: {b.text(env.strategy.value)}, approvals: {approvals}; "
            f"live: {running}"
        )
    return _answer(lines)
