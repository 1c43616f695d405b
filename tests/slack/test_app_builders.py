"""The Slack layer's pure parts: answers, modals, the Home view and the delivery keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import cast

from bot.domain.commands import ParseError
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind
from bot.domain.message import Mention, Message
from bot.domain.phases import Phase
from bot.slack import actions, answers, home, keys, modals
from bot.slack.services import Services

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> <https://evil.example|x> &"


def dep(did: str = "d1", phase: Phase = Phase.VERIFYING, **kw: object) -> Deployment:
    return Deployment(
        did,
        "checkout",
        "production",
        "1.4.2",
        Strategy.ROLLING,
        "U0ALICE",
        phase,
        NOW - timedelta(minutes=5),
        NOW - timedelta(minutes=1),
        **kw,  # type: ignore[arg-type]
    )


def lock(lock_id: int = 7, reason: str = "db migration") -> Lock:
    return Lock(lock_id, "production", None, LockKind.MANUAL, reason, "U0BOB", NOW - timedelta(hours=1))


def test_engine_messages_render_mentions_and_escape_text() -> None:
    said = answers.outcome(True, Message.of("locked by ", Mention("U0BOB"), ": ", HOSTILE))
    assert "<@U0BOB>" in said.text
    assert "<!channel>" not in said.text and "&lt;!channel&gt;" in said.text
    assert "&amp;" in said.text


def test_an_engine_refusal_in_a_channel_is_left_to_the_engine() -> None:
    assert answers.engine_outcome(False, Message.of("no"), "C0DEPLOYS") is None
    assert answers.engine_outcome(False, Message.of("no"), None) is not None
    assert answers.engine_outcome(True, Message.of("yes"), "C0DEPLOYS") is not None


def test_a_parse_error_says_what_and_shows_the_usage_escaped() -> None:
    said = answers.parse_error(ParseError(f"unexpected '{HOSTILE}'", "/deploy <service> <version>"))
    body = json.dumps(said.payload())
    assert "<!channel>" not in body and "&lt;service&gt;" in body
    assert said.payload()["response_type"] == "ephemeral"


def test_status_lists_deployments_and_locks_with_thread_links() -> None:
    said = answers.status([dep()], [lock(reason=HOSTILE)], NOW, {"d1": "https://x.slack.com/archives/C/p1"})
    assert (
        "`d1`" in said.text
        and "verifying" in said.text
        and "<https://x.slack.com/archives/C/p1|thread>" in said.text
    )
    assert "<!channel>" not in said.text and "manual lock by <@U0BOB>" in said.text


def test_history_shows_version_who_when_outcome_duration() -> None:
    past = dep(phase=Phase.SUCCEEDED)
    said = answers.history("checkout", None, [past], {})
    assert (
        "`1.4.2`" in said.text
        and "<@U0ALICE>" in said.text
        and "succeeded" in said.text
        and "4m 00s" in said.text
    )


def test_a_stale_button_says_what_the_deployment_does_now() -> None:
    said = answers.stale(dep(phase=Phase.ROLLED_BACK), "approving")
    assert "rolled back" in said.text and "approving no longer applies" in said.text


def test_modal_context_round_trips_and_reject_requires_a_reason() -> None:
    context = modals.Context("d1", 4, "C0DEPLOYS", "123.456")
    view = modals.reject(context)
    assert modals.Context.decode(view["private_metadata"]) == context
    reason = next(b for b in view["blocks"] if b.get("block_id") == modals.REASON_BLOCK)
    assert reason["optional"] is False
    assert next(b for b in modals.rollback(context)["blocks"] if b.get("type") == "input")["optional"] is True
    assert modals.Context.decode("not json") is None
    submitted = {"state": {"values": {"reason": {"text": {"type": "plain_text_input", "value": "  no  "}}}}}
    assert modals.reason_of(submitted) == "no"


def test_home_shows_unlock_only_where_allowed_and_fits_slack() -> None:
    view = home.view([dep()], [lock(7), lock(8)], {"checkout": [dep(phase=Phase.SUCCEEDED)]}, NOW, {}, {7})
    buttons = [b["accessory"] for b in view["blocks"] if "accessory" in b]
    assert [actions.decode(b["value"]).lock_id for b in buttons] == [7]  # type: ignore[union-attr]
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    many = home.view([dep(f"d{i}") for i in range(200)], [], {}, NOW, {}, set())
    assert len(many["blocks"]) <= 100


def test_a_double_click_is_one_key_and_a_newer_rendering_another() -> None:
    body = {"container": {"channel_id": "C1", "message_ts": "1.2"}, "user": {"id": "U0BOB"}}
    first = {"action_id": actions.APPROVE, "value": '{"d":"d1","v":3}', "action_ts": "10.0"}
    second = {**first, "action_ts": "10.3"}
    newer = {**first, "value": '{"d":"d1","v":4}'}
    assert keys.click_key(body, first) == keys.click_key(body, second)
    assert keys.click_key(body, first) != keys.click_key(body, newer)
    assert keys.click_key({**body, "user": {"id": "U0CAROL"}}, first) != keys.click_key(body, first)
    long_value = {**first, "value": "x" * 2000}
    long_key = keys.click_key(body, long_value)
    assert long_key is not None and len(long_key) <= keys.MAX_KEY


async def test_a_promote_or_approve_counts_only_for_the_step_or_stage_it_was_drawn_for() -> None:
    from bot.slack.listeners_actions import stale_answer

    # Only a Roll back of a success looks anything up; no button clicked here does, so no services.
    none = cast(Services, None)
    held = dep(version_no=9, step=1)  # A promoted step 0 since the button was drawn (at v5, step 0)
    assert await stale_answer(none, held, actions.PROMOTE, 5, step=0) is not None
    assert await stale_answer(none, held, actions.PROMOTE, 5) is not None  # an old button: no step
    assert await stale_answer(none, held, actions.PROMOTE, 5, step=1) is None  # guard ticks moved v
    assert await stale_answer(none, held, actions.PROMOTE, 9) is None  # exactly what was drawn
    voting = dep(phase=Phase.AWAITING_APPROVAL, version_no=4, approval_stage=1)
    assert await stale_answer(none, voting, actions.APPROVE, 3, stage=0) is not None
    assert await stale_answer(none, voting, actions.APPROVE, 3, stage=1) is None
    # Cancel, Abort and Reject keep their meaning while their phase accepts them.
    assert await stale_answer(none, voting, actions.REJECT, 3, stage=0) is None
    assert await stale_answer(none, voting, actions.CANCEL, 1) is None
    assert await stale_answer(none, held, actions.ABORT, 2) is None
    assert await stale_answer(none, dep(phase=Phase.ROLLED_BACK, version_no=9), actions.ABORT, 2) is not None


def test_a_button_value_carries_step_and_stage_and_old_values_still_decode() -> None:
    value = actions.ButtonValue("d1", 3, step=2, stage=1)
    assert actions.decode(actions.encode(value)) == value
    assert actions.decode('{"d":"d1","v":3}') == actions.ButtonValue("d1", 3)
    assert actions.decode('{"d":"d1","v":3,"l":7}') == actions.ButtonValue("d1", 3, lock_id=7)
    assert actions.decode('{"d":"d1","v":3,"s":true}') is None
    assert actions.decode('{"d":"d1","v":3,"x":1}') is None


def test_a_delivery_missing_what_tells_it_apart_has_no_key() -> None:
    # Before: these all became one constant key ("slack-command:", …) and every later one was dropped.
    assert keys.command_key({}) is None and keys.command_key({"trigger_id": ""}) is None
    assert keys.command_key({"trigger_id": "T1"}) != keys.command_key({"trigger_id": "T2"})
    assert keys.view_key({"view": {"id": "V1"}}) is None and keys.view_key({}) is None
    assert keys.view_key({"view": {"id": "V1", "hash": "h"}}) is not None
    assert keys.event_key({}) is None and keys.event_key({"event_id": "Ev1"}) is not None
    no_user = {"container": {"channel_id": "C1", "message_ts": "1.2"}}
    assert keys.click_key(no_user, {"action_id": actions.APPROVE, "value": "v"}) is None
    assert keys.click_key({**no_user, "user": {"id": "U0BOB"}}, {"value": "v"}) is None
    home = {"container": {"type": "view", "view_id": "V9"}, "user": {"id": "U0BOB"}}
    assert keys.click_key(home, {"action_id": actions.UNLOCK, "value": "v"}) is not None
