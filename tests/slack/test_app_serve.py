"""``shipthread serve`` end to end, driven only through signed Slack requests.

Each test starts a real ``shipthread serve`` process against the Slack, Jenkins and Kubernetes
emulators and the shared Prometheus, types slash commands and clicks the buttons of the messages
the bot posted (as the emulator holds them), and reads the outcome in Slack, the cluster and the
process's own endpoints.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.sandbox.server import ServerThread
from bot.slack import actions
from tests.engine.stack import k8s_image, playbook
from tests.slack.serve_process import CHANNEL, ServeProcess

SRE = [{"group": "sre", "count": 1}]


async def test_help_and_bad_input_are_answered_in_the_ack(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run))
    driver = serve.driver()
    helped = await driver.slash_command("/deploy", "help")
    assert helped.status == 200
    assert "/deploy status [service]" in helped.json()["text"]
    bad = await driver.slash_command("/deploy", "checkout")
    body = bad.json()
    assert body["response_type"] == "ephemeral"
    assert "expected a version" in body["text"] and "Usage:" in body["text"]
    unknown = await driver.slash_command("/deploy", "payments 1.0.0")
    assert "no service" in unknown.json()["text"] and "checkout" in unknown.json()["text"]
    env = await driver.slash_command("/deploy", "checkout 1.0.0 to moon")
    assert "no environment" in env.json()["text"] and "production" in env.json()["text"]


async def test_rolling_deploy_with_approval_four_eyes_and_status(
    k8s_server: ServerThread, run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run, approvals=SRE))
    serve_ratio = _ratio(serve, run)
    serve_ratio("checkout", 0.0)
    driver = serve.driver()
    acked = await driver.slash_command("/deploy", "checkout 1.1.0", user_id="U0ALICE")
    assert acked.status == 200 and "Deploying checkout 1.1.0" in acked.json()["text"]
    did = await _deployment_id(serve, "U0ALICE")
    # The requester may not approve their own deployment: refused, privately, and nothing changes.
    own = await serve.click(driver, did, "approval:0", actions.APPROVE, "U0ALICE")
    assert own.status == 200
    await serve.wait(
        lambda: any("four-eyes" in t for t in serve.ephemerals("U0ALICE")), what="four-eyes refusal"
    )
    status = await driver.slash_command("/deploy", "status checkout", user_id="U0CAROL")
    assert status.status == 200
    await serve.wait(
        lambda: any(did in t and "awaiting approval" in t for t in serve.ephemerals("U0CAROL")), what="status"
    )
    ok = await serve.click(driver, did, "approval:0", actions.APPROVE, "U0BOB")
    assert ok.status == 200
    await _until_phase(serve, did, "Succeeded")
    assert k8s_image(k8s_server.url, "checkout") == "registry.example.com/checkout:1.1.0"
    history = await driver.slash_command("/deploy", "history checkout", user_id="U0CAROL")
    assert history.status == 200
    await serve.wait(
        lambda: any("1.1.0" in t and "succeeded" in t for t in serve.ephemerals("U0CAROL")), what="history"
    )


async def test_reject_from_the_modal_needs_a_reason(run: str, serve_of: Callable[..., ServeProcess]) -> None:
    serve = serve_of(playbook("checkout", run, approvals=SRE))
    driver = serve.driver()
    await driver.slash_command("/deploy", "checkout 1.2.0", user_id="U0ALICE")
    did = await _deployment_id(serve, "U0ALICE")
    clicked = await serve.click(driver, did, "approval:0", actions.REJECT, "U0BOB")
    assert clicked.status == 200
    view = await serve.wait(lambda: _open_view(serve, "U0BOB"), what="the reject modal")
    empty = await driver.submit_view(view["id"], {"reason": {"text": "   "}}, user_id="U0BOB")
    assert empty.json()["response_action"] == "errors"
    hostile = "<!channel> budget spent, see <https://evil.example|this>"
    done = await driver.submit_view(view["id"], {"reason": {"text": hostile}}, user_id="U0BOB")
    assert done.status == 200
    # Slack redelivering the submission: the same view id and hash, one rejection.
    resent = await driver.send(_form(done.sent), "application/x-www-form-urlencoded", retry_num=1)
    assert resent.status == 200
    await _until_phase(serve, did, "Rejected")
    card = serve.thread_messages(did)["card"]
    assert "<!channel>" not in json.dumps(card) and "<https://evil" not in json.dumps(card)
    # The approval request's buttons are stale now: a click says so and changes nothing.
    message = serve.thread_messages(did)["approval:0"]
    if actions.APPROVE in json.dumps(message.get("blocks") or []):
        await driver.click_button(CHANNEL, message["ts"], actions.APPROVE, "U0BOB")
    else:  # the renderer removed the buttons: replay a click as a client showing the old message would
        old = {**clicked.sent, "actions": [{**clicked.sent["actions"][0], "action_id": actions.APPROVE}]}
        await driver.send(_form(old), "application/x-www-form-urlencoded")
    await serve.wait(
        lambda: any("is now *rejected*" in t for t in serve.ephemerals("U0BOB")),
        what=f"the stale answer (told {serve.ephemerals('U0BOB')})",
    )
    audit = await _audit(serve, did)
    assert len([e for e in audit if e["action"] == "reject" and e["outcome"] == "accepted"]) == 1
    assert any(e["action"] == "approve" and "stale" in e["outcome"] for e in audit)


async def test_retries_and_double_clicks_have_one_effect(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    stages = [{"group": "sre", "count": 2}]
    serve = serve_of(playbook("checkout", run, approvals=stages))
    driver = serve.driver()
    await driver.slash_command("/deploy", "checkout 1.3.0", user_id="U0ALICE")
    did = await _deployment_id(serve, "U0ALICE")
    message = await serve.button(did, "approval:0", actions.APPROVE)
    # A double click: two deliveries of one rendered button, at once.
    first, second = await asyncio.gather(
        driver.click_button(CHANNEL, message["ts"], actions.APPROVE, "U0BOB"),
        driver.click_button(CHANNEL, message["ts"], actions.APPROVE, "U0BOB"),
    )
    assert first.status == second.status == 200
    # Slack retrying the first delivery, byte for byte.
    retried = await driver.send(
        _form(first.sent), "application/x-www-form-urlencoded", retry_num=1, retry_reason="http_timeout"
    )
    assert retried.status == 200
    await serve.wait(lambda: any("approved" in t for t in serve.ephemerals("U0BOB")), what="the answer")

    async def both_repeats_counted() -> bool:  # counted after their answer (if any) was sent
        return await serve.metric("shipthread_slack_duplicates_total", kind="click") == 2

    await serve.wait(both_repeats_counted, what="both repeats handled")
    # One answer, one vote, one audit entry for the vote; the repeats are recorded as such, and a
    # repeat that came after the vote was recorded is told so (one still running gets no answer).
    said = serve.ephemerals("U0BOB")
    assert len([t for t in said if "Already handled" not in t]) == 1, said
    assert all("approved" in t for t in said), said
    audit = await _audit(serve, did)
    assert len([e for e in audit if e["action"] == "approve" and e["outcome"] == "accepted"]) == 1
    assert len([e for e in audit if e["outcome"] == "ignored: repeated click"]) == 2
    # The same holds for an event redelivered by Slack: one Home tab published.
    event = await driver.app_home_opened("U0CAROL", event_id="Ev0SAME")
    again = await driver.app_home_opened("U0CAROL", event_id="Ev0SAME", retry_num=1)
    assert event.status == again.status == 200
    await serve.wait(lambda: serve.emulator.calls("views.publish"), what="the Home tab")

    async def repeat_counted() -> bool:
        return await serve.metric("shipthread_slack_duplicates_total", kind="event") == 1

    await serve.wait(repeat_counted, what="the redelivered event handled")
    assert len(serve.emulator.calls("views.publish")) == 1


async def test_forged_stale_and_replayed_signatures_are_refused(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run))
    forged = await serve.driver(secret="not-the-secret").slash_command("/deploy", "checkout 1.1.0")
    assert forged.status == 401
    old = serve.driver(wall_clock=lambda: time.time() - 600)
    stale = await old.slash_command("/deploy", "checkout 1.1.0")
    assert stale.status == 401
    # A signature lifted from one request onto another body.
    good = serve.driver()
    body = "command=%2Fdeploy&text=checkout+1.1.0&user_id=U0ALICE&channel_id=C0DEPLOYS"
    stamp = str(int(time.time()))
    from slack_sdk.signature import SignatureVerifier

    signature = SignatureVerifier("serve-test-signing-secret-0123456789").generate_signature(
        timestamp=stamp, body="command=%2Fdeploy&text=help"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            good.app_url,
            data=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": str(signature),
            },
        ) as response,
    ):
        assert response.status == 401
    # A signed request sent after the forged ones is answered: had a forged one reached a listener,
    # its work would be queued ahead of this one's.
    await good.slash_command("/deploy", "status", user_id="U0ALICE")
    said = await serve.wait(lambda: serve.ephemerals("U0ALICE"), what="the status answer")
    assert "Active deployments*\n_none_" in said[0], said
    # No listener ran for them: nothing was deployed, nothing claimed, nothing answered.
    assert await serve.metric("shipthread_slack_acks_total", kind="command", status="401") == 3
    assert serve.emulator.calls("chat.postMessage") == []


async def test_health_ready_and_metrics(run: str, serve_of: Callable[..., ServeProcess]) -> None:
    serve = serve_of(playbook("checkout", run, approvals=SRE))
    status, _ = await serve.get("/healthz")
    assert status == 200
    status, body = await serve.get("/readyz")
    ready = json.loads(body)
    assert status == 200, ready
    assert ready["checks"]["database"] == "ok" and ready["checks"]["slack"] == "ok"
    await serve.driver().slash_command("/deploy", "checkout 1.1.0", user_id="U0ALICE")
    await _deployment_id(serve, "U0ALICE")

    async def awaiting() -> bool:
        return await serve.metric("shipthread_deployments_active", phase="awaiting_approval") == 1

    await serve.wait(awaiting, what="the awaiting deployment in /metrics")
    # Sample values, not names: a name alone is always there in its # HELP line.
    _, text = await serve.get("/metrics")
    samples = _samples(text)
    assert samples[("shipthread_slack_ack_seconds_count", 'kind="command"')] >= 1
    assert samples[("shipthread_slack_acks_total", 'kind="command",status="200"')] >= 1
    assert samples[("shipthread_slack_calls_total", 'method="auth.test",outcome="ok"')] >= 1
    assert samples[("shipthread_slack_calls_total", 'method="chat.postMessage",outcome="ok"')] >= 1
    assert samples[("shipthread_outbox_depth", "")] >= 0
    assert samples[("shipthread_outbox_oldest_age_seconds", "")] >= 0
    assert samples[("shipthread_adapter_retries_total", "")] == 0
    assert "# TYPE shipthread_guard_verdicts_total counter" in text or (
        "# TYPE shipthread_guard_verdicts counter" in text
    )


def _samples(text: str) -> dict[tuple[str, str], float]:
    """``/metrics`` as (name, sorted labels) → value, comments left out."""
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        name, _, labels = key.partition("{")
        found[(name, ",".join(sorted(labels.rstrip("}").split(","))) if labels else "")] = float(value)
    return found


# -- helpers -------------------------------------------------------------------------------------


def _ratio(serve: ServeProcess, run: str) -> Callable[[str, float], None]:
    from tests.engine.stack import RATIO
    from tests.support.promwrite import Series, push

    def set_ratio(service: str, value: float) -> None:
        now = int(time.time() * 1000)
        labels = {"__name__": RATIO, "service": service, "run": run}
        push(serve.prometheus_url, [Series(labels, [(now, value)])])

    return set_ratio


async def _deployment_id(serve: ServeProcess, user: str) -> str:
    """The id of the deployment the bot opened a thread for (the newest card)."""

    def newest() -> str | None:
        cards = [
            (m["ts"], (m.get("metadata") or {}).get("event_payload", {}).get("deployment"))
            for m in serve.emulator.messages(CHANNEL)
            if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == "card"
        ]
        return sorted(cards)[-1][1] if cards else None

    found: str = await serve.wait(newest, what="the deployment's card")
    return found


async def _until_phase(serve: ServeProcess, did: str, label: str, timeout: float = 60.0) -> None:
    def shows() -> bool:
        card = serve.thread_messages(did).get("card")
        return bool(card) and label.lower() in json.dumps(card).lower()

    await serve.wait(shows, timeout, f"{did} card to say {label}")


async def _open_view(serve: ServeProcess, user: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{serve.slack.url}/_sandbox/views", params={"user": user}) as response,
    ):
        views = [
            v for v in (await response.json())["views"] if v.get("type") == "modal" and not v.get("closed")
        ]
    return views[-1] if views else None


def _form(payload: Any) -> str:
    from urllib.parse import urlencode

    return urlencode({"payload": json.dumps(payload)})


async def _audit(serve: ServeProcess, did: str) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from bot.store.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{serve.folder / 'shipthread.db'}")
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("select action, outcome, target from audit_log where target = :t"), {"t": did}
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


async def test_readyz_names_each_failing_part(
    run: str, serve_of: Callable[..., ServeProcess], slack_server: ServerThread
) -> None:
    book = playbook("checkout", run)
    book["environments"]["production"]["channel"] = "C0MISSING"
    serve = serve_of(book)
    status, body = await serve.get("/readyz")
    ready = json.loads(body)
    assert status == 503
    assert set(ready["failing"]) == {"channels"} and "C0MISSING" in ready["failing"]["channels"]
    status, _ = await serve.get("/healthz")
    assert status == 200  # alive, only not ready


async def test_socket_mode_deploy_approve_and_redeliveries_once(
    k8s_server: ServerThread, run: str, serve_of: Callable[..., ServeProcess], slack_server: ServerThread
) -> None:
    from bot.sandbox.slack import DEFAULT_APP_TOKEN, SocketModeDriver

    serve = serve_of(
        playbook("checkout", run, approvals=SRE),
        args=("--upgrade", "--poll-interval", "0.1", "--socket-mode"),
        environ={"SLACK_APP_TOKEN": DEFAULT_APP_TOKEN},
    )
    _ratio(serve, run)("checkout", 0.0)
    driver = SocketModeDriver(slack_server.url, ack_wait=5)
    acked = await driver.slash_command("/deploy", "checkout 1.1.0", user_id="U0ALICE")
    assert acked.status == 200 and "Deploying checkout 1.1.0" in acked.json()["text"]
    did = await _deployment_id(serve, "U0ALICE")
    message = await serve.button(did, "approval:0", actions.APPROVE)
    first = await driver.click_button(CHANNEL, message["ts"], actions.APPROVE, "U0BOB")
    assert first.status == 200
    # Slack redelivering the same envelope payload (as after a lost ack): no second effect.
    again = await driver._deliver("interactive", first.sent, 1, "timeout")
    assert again.status == 200
    await _until_phase(serve, did, "Succeeded")
    assert k8s_image(k8s_server.url, "checkout") == "registry.example.com/checkout:1.1.0"

    async def repeat_counted() -> bool:  # counted after its answer (if any) was sent
        return await serve.metric("shipthread_slack_duplicates_total", kind="click") == 1

    await serve.wait(repeat_counted, what="the redelivery handled")
    # Socket Mode acks are counted and timed like the HTTP route's: the command, the click and its
    # redelivery.
    assert await serve.metric("shipthread_slack_acks_total", kind="command", status="200") == 1
    assert await serve.metric("shipthread_slack_ack_seconds_count", kind="command") == 1
    assert await serve.metric("shipthread_slack_acks_total", kind="action", status="200") == 2
    said = serve.ephemerals("U0BOB")
    assert len([t for t in said if "Already handled" not in t]) == 1, said
    status, _ = await serve.get("/healthz")
    assert status == 200  # the health server runs on --port in Socket Mode too


async def test_sigterm_lets_acked_work_finish_and_exits_zero(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run, approvals=SRE))
    driver = serve.driver()
    acked = await driver.slash_command("/deploy", "checkout 1.9.0", user_id="U0ALICE")
    assert acked.status == 200
    assert serve.stop() == 0
    # The request acked just before SIGTERM was carried out and answered before the exit.
    assert any("deploying checkout 1.9.0" in t for t in serve.ephemerals("U0ALICE"))
    assert any('"message": "stopped"' in line for line in serve.lines)


async def test_approver_groups_written_as_slack_user_groups(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    # "@sre" is the emulator's user group of that handle (carol only); S0APPROVERS has bob and carol.
    config = {"approver_groups": {"sre": ["@sre"], "leads": ["S0APPROVERS"], "oncall": ["U0ERIN"]}}
    serve = serve_of(playbook("checkout", run, approvals=SRE), config=config)
    driver = serve.driver()
    await driver.slash_command("/deploy", "checkout 1.1.0", user_id="U0ALICE")
    did = await _deployment_id(serve, "U0ALICE")
    await serve.click(driver, did, "approval:0", actions.APPROVE, "U0BOB")  # not in @sre
    await serve.wait(lambda: any("Refused" in t for t in serve.ephemerals("U0BOB")), what="bob refused")
    await serve.click(driver, did, "approval:0", actions.APPROVE, "U0CAROL")
    await serve.wait(lambda: any("approved" in t for t in serve.ephemerals("U0CAROL")), what="carol approved")
    assert serve.emulator.calls("usergroups.users.list")
