"""What a person sees in a deployment's thread, notification by notification."""

from __future__ import annotations

import copy
import json
import typing
from dataclasses import replace
from typing import Any

from bot.domain import events as ev
from bot.domain import notifications
from bot.domain.deployment import Strategy
from bot.domain.phases import Phase
from bot.sandbox.slack import check_message_blocks
from bot.slack import actions, card
from bot.slack.outgoing import CARD, Outgoing, Priority
from bot.slack.thread import STATE_VERSION, plan
from tests.slack.scenario import (
    APPROVER,
    JENKINS,
    PROMETHEUS,
    REQUESTER,
    Words,
    at,
    ctx,
    deployment,
    life,
    run,
)


def texts(message: Outgoing) -> str:
    """Every text a person can read in a message, joined."""
    found: list[str] = [message.text]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                found.append(value["text"])
            for child in value.values():
                walk(child)
        elif isinstance(value, list | tuple):
            for child in value:
                walk(child)

    walk(message.blocks)
    return "\n".join(found)


def last(plans: list[Any], key: str) -> Outgoing:
    for _, p in reversed(plans):
        for m in p.thread:
            if m.key == key:
                return typing.cast(Outgoing, m)
    raise AssertionError(f"no message {key!r}")


def buttons(message: Outgoing) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_every_notification_type_is_rendered_within_slacks_limits() -> None:
    seen = set()
    for n, p in run(life()):
        seen.add(type(n))
        for m in [*p.thread, *(c.message for c in p.channel)]:
            assert check_message_blocks(list(m.blocks)) == []
            assert m.text.strip()
    assert seen == set(typing.get_args(notifications.Notification))


def test_the_card_shows_what_where_who_how_and_links() -> None:
    plans = run(life())
    held = [
        p for n, p in plans if isinstance(n, notifications.PhaseChanged) and isinstance(n.event, ev.GuardHeld)
    ]
    shown = texts(next(m for m in held[0].thread if m.key == CARD))
    for expected in (
        "checkout",
        "`1.4.2` (was `1.4.1`)",
        "`production`",
        f"<@{REQUESTER}>",
        "canary, step 1, 10 %",
        "held for a decision",
        f"approved by <@{APPROVER}>",
        f"<{JENKINS}|Jenkins build #8>",
        f"<{PROMETHEUS}/graph?g0.expr=",
        "Grafana",
        "Elapsed",
    ):
        assert expected in shown, expected


def test_the_card_buttons_follow_the_phase_with_a_confirm_in_production() -> None:
    w = Words()
    dep = deployment(w)
    states = {
        Phase.AWAITING_APPROVAL: [actions.CANCEL],
        Phase.VERIFYING: [actions.ROLLBACK],
        Phase.SUCCEEDED: [actions.ROLLBACK],
        Phase.FAILED: [],
    }
    for phase, wanted in states.items():
        p = plan(None, notifications.DeploymentOpened(at(dep, phase, 1), "C1"), ctx())
        the_card = p.thread[0]
        assert buttons(the_card) == wanted
        for b in (e for blk in the_card.blocks if blk["type"] == "actions" for e in blk["elements"]):
            decoded = actions.decode(b["value"])
            # The step and approval stage it was drawn at ride along (a stale Promote/Approve is refused).
            assert decoded == actions.ButtonValue(dep.id, dep.version_no + 1, step=0, stage=0)
            if b["action_id"] == actions.ROLLBACK:
                assert "confirm" in b
    staging = replace(dep, env="staging").with_phase(Phase.VERIFYING, dep.created_at)
    roll = plan(None, notifications.DeploymentOpened(staging, "C1"), ctx()).thread[0]
    assert all("confirm" not in e for b in roll.blocks if b["type"] == "actions" for e in b["elements"])


def test_the_build_is_one_reply_edited_per_attempt_with_the_console_tail_on_failure() -> None:
    plans = run(life())
    keys = [m.key for _, p in plans for m in p.thread if m.key.startswith("build")]
    assert set(keys) == {"build", "build:2"}
    first = [m for _, p in plans for m in p.thread if m.key == "build"]
    assert "queued" in texts(first[0]) and "running" in texts(first[1])
    failed = next(m for m in first if "failed" in m.text)
    assert "npm ERR! test failed" in texts(failed) and "```" in texts(failed)
    assert f"<@{REQUESTER}>" in texts(failed) and failed.priority is Priority.URGENT
    assert "40 %" in texts(first[2]) and "▓" in texts(first[2])


def test_one_reply_per_guard_window_redrawn_per_tick_then_the_verdict() -> None:
    plans = run(life())
    guard = [(n, m) for n, p in plans for m in p.thread if m.key.startswith("guard:0:")]
    assert len({m.key for _, m in guard}) == 1
    ticks = [m for n, m in guard if isinstance(n, notifications.GuardTick)]
    assert [m.priority for m in ticks] == [Priority.REDRAW] * 3
    drawn = texts(ticks[-1])
    assert "tick 3 of 10" in drawn and "✓·✗" in drawn and "max 0.05" in drawn
    assert any(c in drawn for c in "▁▂▃▄▅▆▇█")
    verdict = next(m for n, m in guard if isinstance(n, notifications.GuardVerdict))
    assert verdict.priority is Priority.URGENT and "inconclusive" in texts(verdict)
    held = [m for n, m in guard if isinstance(n, notifications.PhaseChanged)]
    assert buttons(held[0]) == [actions.PROMOTE, actions.ABORT]
    aborted = held[-1]
    assert buttons(aborted) == [] and f"Aborted by <@{REQUESTER}>" in texts(aborted)
    post = {m.key for _, p in plans for m in p.thread if m.key.startswith("guard:rollback:")}
    assert len(post) == 1


def test_a_step_without_a_guard_reads_as_skipped_never_as_passed() -> None:
    dep = at(deployment(Words(), Strategy.ROLLING), Phase.VERIFYING, 2)
    dep = replace(dep, guard_started_at=dep.updated_at)
    skipped = notifications.GuardVerdict(
        dep, notifications.SKIPPED, "no guard for this step", step=0, window_started_at=dep.guard_started_at
    )
    plans = run(iter([notifications.DeploymentOpened(dep, "C0DEPLOYS"), skipped]))
    [reply] = [m for _, p in plans for m in p.thread if m.key.startswith("guard:0:")]
    shown = texts(reply)
    assert "⏭️ *Guard skipped*: no guard for this step" in shown
    assert "passed" not in shown.lower() and "tick" not in shown
    assert reply.priority is Priority.NORMAL
    assert check_message_blocks(list(reply.blocks)) == []


def test_approvals_mention_the_approvers_then_say_who_decided() -> None:
    plans = run(life())
    replies = [m for _, p in plans for m in p.thread if m.key == "approval:0"]
    assert f"<@{APPROVER}> <@U0CAT>" in texts(replies[0])
    assert buttons(replies[0]) == [actions.APPROVE, actions.REJECT]
    assert buttons(replies[-1]) == [] and f"Approved by <@{APPROVER}>" in texts(replies[-1])


def test_rollback_says_who_why_and_to_which_version() -> None:
    shown = texts(last(run(life()), "rollback"))
    assert "`1.4.1` is live again" in shown and f"<@{REQUESTER}>" in shown and "error ratio too high" in shown


def test_locks_go_to_the_thread_with_an_unlock_button_or_to_the_channel() -> None:
    plans = run(life())
    lock = [m for _, p in plans for m in p.thread if m.key == "lock:11"]
    assert buttons(lock[0]) == [actions.UNLOCK]
    assert actions.decode(lock[0].blocks[-1]["elements"][0]["value"]) is not None
    assert actions.decode(lock[0].blocks[-1]["elements"][0]["value"]).lock_id == 11  # type: ignore[union-attr]
    assert buttons(lock[-1]) == [] and "unlocked" in texts(lock[-1])
    posts = [c for _, p in plans for c in p.channel]
    assert [c.channel for c in posts] == ["C0DEPLOYS", "C0DEPLOYS"]
    assert posts[0].message.key == posts[1].message.key
    assert "manual" in texts(posts[0].message) and "unlocked" in texts(posts[1].message)


def test_a_refusal_is_an_ephemeral_with_the_structured_mention_only() -> None:
    *_, (n, p) = run(life(Words(reason="<!channel> no")))
    assert isinstance(n, notifications.Refused)
    (eph,) = p.ephemeral
    assert eph.user == REQUESTER and "&lt;!channel&gt; no" in eph.text and f"<@{APPROVER}>" in eph.text


def test_plan_is_pure_and_restart_safe() -> None:
    state: dict[str, Any] | None = None
    for n in life():
        before = copy.deepcopy(state)
        first = plan(state, n, ctx())
        assert state == before  # the caller's state was not changed
        again = plan(copy.deepcopy(state), n, ctx())
        assert first == again  # a retried notification plans the same messages
        if first.card_state is not None:
            json.dumps(first.card_state)
            assert first.card_state["v"] == STATE_VERSION
            state = first.card_state


def test_a_state_of_another_version_is_rebuilt_from_the_deployment() -> None:
    dep = at(deployment(Words()), Phase.BUILDING, 1)
    p = plan({"v": 999, "whatever": 1}, notifications.PhaseChanged(dep, ev.BuildQueued(queue_item=1)), ctx())
    assert p.card_state is not None and p.card_state["v"] == STATE_VERSION
    assert p.thread[0].key == CARD


def test_an_older_snapshot_never_overwrites_a_newer_one() -> None:
    dep = deployment(Words())
    new = at(at(dep, Phase.BUILDING, 1), Phase.VERIFYING, 3)
    state = plan(None, notifications.DeploymentOpened(new, "C1"), ctx()).card_state
    stale = plan(state, notifications.BuildProgress(at(dep, Phase.BUILDING, 1), "running", None, 0.5), ctx())
    assert stale.card_state is not None and stale.card_state["deployment"]["phase"] == "verifying"


def test_every_phase_has_a_word_and_an_emoji() -> None:
    assert set(card.PHASES) == set(Phase)
    assert deployment(Words(), Strategy.ROLLING).strategy is Strategy.ROLLING
