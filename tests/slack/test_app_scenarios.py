"""Whole deployments through ``shipthread serve``, only through signed Slack requests.

Canary with two approval stages, a guard breach with its automatic rollback and guard lock,
``/rollback`` of a release and during verification, App Home, and hostile text typed into every
field a person can type into.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackDriver
from bot.slack import actions
from tests.engine.stack import RATIO, k8s_image, playbook
from tests.slack.serve_process import CHANNEL, ServeProcess
from tests.support.promwrite import Series, push

TWO_STAGES = [{"group": "leads", "count": 1}, {"group": "sre", "count": 1}]
HOSTILE = "<!channel> <!here> <@U0EVIL99> <!subteam^S0SRE> <https://evil.example|click> &amp;"


def ratio(serve: ServeProcess, run: str, service: str, value: float) -> None:
    now = int(time.time() * 1000)
    push(serve.prometheus_url, [Series({"__name__": RATIO, "service": service, "run": run}, [(now, value)])])


async def opened(serve: ServeProcess, known: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The id of the newest deployment thread not in ``known``."""

    def newest() -> str | None:
        cards = sorted(
            (float(m["ts"]), payload.get("deployment"))
            for m in serve.emulator.messages(CHANNEL)
            if (payload := (m.get("metadata") or {}).get("event_payload") or {}).get("key") == "card"
            and payload.get("deployment") not in known
        )
        return str(cards[-1][1]) if cards else None

    found: str = await serve.wait(newest, what="a new deployment thread")
    return found


async def card_says(serve: ServeProcess, did: str, label: str, timeout: float = 60.0) -> dict[str, Any]:
    def shows() -> dict[str, Any] | None:
        card = serve.thread_messages(did).get("card")
        return card if card and label.lower() in json.dumps(card).lower() else None

    found: dict[str, Any] = await serve.wait(shows, timeout, f"{did} card to say {label!r}")
    return found


async def told(serve: ServeProcess, user: str, *words: str, timeout: float = 20.0) -> str:
    def said() -> str | None:
        for text in serve.ephemerals(user):
            if all(w.lower() in text.lower() for w in words):
                return text
        return None

    found: str = await serve.wait(
        said, timeout, f"{user} to be told {words} (was told {serve.ephemerals(user)})"
    )
    return found


async def test_production_canary_with_two_approval_stages(
    k8s_server: ServerThread, run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run, strategy="canary", steps=(25, 50), approvals=TWO_STAGES))
    ratio(serve, run, "checkout", 0.0)
    driver = serve.driver()
    await driver.slash_command("/deploy", "checkout 2.0.0 to production", user_id="U0BOB")
    did = await opened(serve)
    # Stage 1 is leads: the requester (also in sre) and a non-approver are refused.
    await serve.click(driver, did, None, actions.APPROVE, "U0BOB")
    await told(serve, "U0BOB", "four-eyes")
    await serve.click(driver, did, None, actions.APPROVE, "U0ALICE")
    await told(serve, "U0ALICE", "refused")
    await serve.click(driver, did, None, actions.APPROVE, "U0DAVE")
    await told(serve, "U0DAVE", "approved")
    # Stage 2 is sre: bob is in sre but requested it; carol approves.
    await card_says(serve, did, "stage 2")
    await serve.click(driver, did, None, actions.APPROVE, "U0CAROL")
    await told(serve, "U0CAROL", "approved")
    await card_says(serve, did, "Succeeded", timeout=90)
    assert k8s_image(k8s_server.url, "checkout") == "registry.example.com/checkout:2.0.0"
    assert await serve.metric("shipthread_guard_verdicts_total", verdict="pass") >= 3


async def test_guard_breach_rolls_back_locks_refuses_and_unlocks(
    k8s_server: ServerThread, run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run, window=6.0))
    ratio(serve, run, "checkout", 0.01)
    driver = serve.driver()
    await driver.slash_command("/deploy", "checkout 1.2.0", user_id="U0ALICE")
    did = await opened(serve)
    await card_says(serve, did, "verifying")
    ratio(serve, run, "checkout", 0.30)  # the new version serves 30 % errors
    await card_says(serve, did, "Rolled back", timeout=60)
    assert k8s_image(k8s_server.url, "checkout") == "registry.example.com/checkout:1.0.0"

    # The guard lock is told in the deployment's thread, with its Unlock button, not top-level.
    def lock_reply() -> dict[str, Any] | None:
        found = [m for key, m in serve.thread_messages(did).items() if key.startswith("lock:")]
        return found[0] if found else None

    lock = await serve.wait(lock_reply, what="the guard lock told in the thread")
    assert "locked (guard)" in lock["text"] and lock.get("thread_ts") not in (None, lock["ts"])
    assert actions.UNLOCK in json.dumps(lock["blocks"])
    assert not [
        m
        for m in serve.emulator.messages(CHANNEL)
        if "locked (guard)" in m.get("text", "") and m.get("thread_ts", m["ts"]) == m["ts"]
    ]
    # The notifier's and the chart poster's Slack calls are counted with the app's own.
    for method in ("chat.postMessage", "chat.update", "files.completeUploadExternal"):

        async def counted(method: str = method) -> bool:
            return await serve.metric("shipthread_slack_calls_total", method=method, outcome="ok") > 0

        await serve.wait(counted, 30, f"{method} counted in /metrics")
    # A deployment into the locked environment is refused, privately.
    await driver.slash_command("/deploy", "checkout 1.2.1", user_id="U0ALICE")
    await told(serve, "U0ALICE", "locked")
    status = await driver.slash_command("/deploy", "status", user_id="U0ALICE")
    assert status.status == 200
    await told(serve, "U0ALICE", "guard lock")
    # The restored version recovers: the clean post-rollback window lifts the lock by itself.
    ratio(serve, run, "checkout", 0.0)

    async def unlocked() -> bool:
        await driver.slash_command("/deploy", "status", user_id="U0CAROL")
        await asyncio.sleep(0.3)
        return any("Locks*\n_none_" in t for t in serve.ephemerals("U0CAROL"))

    await serve.wait(unlocked, 60, "the guard lock to lift")
    # The guard's own unlock edits the lock's reply in the thread (its button gone).
    lifted = await serve.wait(
        lambda: (m := lock_reply()) and "unlocked (guard)" in m["text"] and m, 30, "the lock reply edited"
    )
    assert lifted["ts"] == lock["ts"] and actions.UNLOCK not in json.dumps(lifted["blocks"])
    assert await serve.metric("shipthread_guard_verdicts_total", verdict="fail") >= 1


async def test_rollback_of_the_last_release_and_during_verification(
    k8s_server: ServerThread, run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run, window=8))
    ratio(serve, run, "checkout", 0.0)
    driver = serve.driver()
    image = "registry.example.com/checkout:{}".format
    # During verification: /rollback rolls the live deployment back.
    await driver.slash_command("/deploy", "checkout 1.4.0", user_id="U0ALICE")
    first = await opened(serve)
    await card_says(serve, first, "verifying")
    await driver.slash_command("/rollback", "checkout -- latency looks off", user_id="U0BOB")
    await card_says(serve, first, "Rolled back", timeout=60)
    assert k8s_image(k8s_server.url, "checkout") == image("1.0.0")
    await driver.slash_command("/deploy", "unlock production checkout", user_id="U0BOB")
    await told(serve, "U0BOB", "unlocked production/checkout")
    # From the thread's Roll back button: a modal, the reason optional.
    await driver.slash_command("/deploy", "checkout 1.5.0", user_id="U0ALICE")
    second = await opened(serve, {first})
    await card_says(serve, second, "verifying")
    await serve.click(driver, second, "card", actions.ROLLBACK, "U0BOB")
    view = await serve.wait(lambda: _modal(serve, "U0BOB"), what="the rollback modal")
    await driver.submit_view(view["id"], {}, user_id="U0BOB")
    await card_says(serve, second, "Rolled back", timeout=60)
    await serve.wait(lambda: len([t for t in serve.ephemerals("U0BOB") if "rolling back" in t]) >= 2)
    await driver.slash_command("/deploy", "unlock production checkout", user_id="U0BOB")
    await serve.wait(
        lambda: len([t for t in serve.ephemerals("U0BOB") if "unlocked" in t]) >= 2, what="unlock"
    )
    # Of the last release: once 1.6.0 succeeded, /rollback puts back what ran before it.
    await driver.slash_command("/deploy", "checkout 1.6.0", user_id="U0ALICE")
    third = await opened(serve, {first, second})
    await card_says(serve, third, "Succeeded", timeout=60)
    assert k8s_image(k8s_server.url, "checkout") == image("1.6.0")
    await driver.slash_command("/rollback", "checkout", user_id="U0BOB")
    fourth = await opened(serve, {first, second, third})
    await card_says(serve, fourth, "Rolled back", timeout=60)
    assert k8s_image(k8s_server.url, "checkout") == image("1.0.0")
    await driver.slash_command("/deploy", "history checkout", user_id="U0BOB")
    await told(serve, "U0BOB", "1.6.0", "succeeded", "(rollback)")


async def test_hostile_text_never_renders_as_a_mention_or_a_link(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    serve = serve_of(playbook("checkout", run, approvals=[{"group": "sre", "count": 1}]))
    driver = serve.driver()
    quoted = HOSTILE.replace('"', "'")
    acks = []
    acks += [await driver.slash_command("/deploy", f"lock staging -- {HOSTILE}", user_id="U0ALICE")]
    acks += [await driver.slash_command("/deploy", f"lock production -- {HOSTILE}", user_id="U0ALICE")]
    await told(serve, "U0ALICE", "locked production")
    acks += [
        await driver.slash_command("/deploy", f'checkout 1.1.0 --emergency "{quoted}"', user_id="U0ERIN")
    ]
    acks += [await driver.slash_command("/deploy", f"checkout {HOSTILE}", user_id="U0ALICE")]
    acks += [await driver.slash_command("/rollback", f"checkout -- {HOSTILE}", user_id="U0ALICE")]
    acks += [await driver.slash_command("/deploy", "unlock production", user_id="U0ALICE")]
    await told(serve, "U0ALICE", "unlocked")
    acks += [await driver.slash_command("/deploy", "checkout 1.1.0", user_id="U0ALICE")]
    did = await opened(serve)
    await serve.click(driver, did, None, actions.REJECT, "U0BOB")
    view = await serve.wait(lambda: _modal(serve, "U0BOB"), what="the reject modal")
    await driver.submit_view(view["id"], {"reason": {"text": HOSTILE}}, user_id="U0BOB")
    await card_says(serve, did, "Rejected")
    acks += [await driver.slash_command("/deploy", "status", user_id="U0ALICE")]
    acks += [await driver.slash_command("/deploy", "history checkout", user_id="U0ALICE")]
    await driver.app_home_opened("U0ALICE")
    await serve.wait(lambda: serve.emulator.calls("views.publish"), what="the Home tab")
    # The last answers in, rather than a pause: whatever the text did, it did by now.
    await told(serve, "U0ALICE", "Active deployments")
    await told(serve, "U0ALICE", "Last deployments of")
    seen = json.dumps(
        [
            [a.body for a in acks],
            serve.emulator.messages(),
            serve.emulator.ephemeral(),
            serve.emulator.calls("views.publish"),
        ]
    )
    assert "evil.example" in seen  # the text was shown, only never as markup
    for markup in ("<!channel>", "<!here>", "<@U0EVIL99>", "<!subteam^", "<https://evil"):
        assert markup not in seen, markup


async def test_app_home_lists_deployments_and_locks_with_unlock_for_those_allowed(
    run: str, serve_of: Callable[..., ServeProcess]
) -> None:
    book = playbook("checkout", run, approvals=[{"group": "sre", "count": 1}])
    serve = serve_of(book)
    driver = serve.driver()
    await driver.slash_command("/deploy", "lock production -- db migration", user_id="U0DAVE")
    await told(serve, "U0DAVE", "locked production")
    await driver.app_home_opened("U0ALICE")
    await driver.app_home_opened("U0CAROL")
    views = await serve.wait(lambda: len(serve.emulator.calls("views.publish")) >= 2 and _homes(serve))
    by_user = {v["user"]: v for v in views}
    assert "db migration" in json.dumps(by_user["U0ALICE"]) and "db migration" in json.dumps(
        by_user["U0CAROL"]
    )
    # alice is no approver of production: no Unlock button for her; carol (sre) has one.
    assert actions.UNLOCK not in json.dumps(by_user["U0ALICE"])
    assert actions.UNLOCK in json.dumps(by_user["U0CAROL"])
    # Clicking it lifts the lock and refreshes her Home tab.
    home = _home_view(serve, "U0CAROL")
    await _click_home(driver, serve, home, "U0CAROL")
    await serve.wait(lambda: "No locks." in json.dumps(_home_view(serve, "U0CAROL")), what="the lock lifted")


def _modal(serve: ServeProcess, user: str) -> dict[str, Any] | None:
    import urllib.request

    with urllib.request.urlopen(f"{serve.slack.url}/_sandbox/views?user={user}", timeout=5) as response:
        views = json.load(response)["views"]
    open_modals = [v for v in views if v.get("type") == "modal" and not v.get("closed")]
    return open_modals[-1] if open_modals else None


def _homes(serve: ServeProcess) -> list[dict[str, Any]]:
    out = []
    for call in serve.emulator.calls("views.publish"):
        args = call.get("args") or call.get("params") or {}
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        out.append({"user": args.get("user_id"), "view": view})
    return out


def _home_view(serve: ServeProcess, user: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"{serve.slack.url}/_sandbox/views?user={user}", timeout=5) as response:
        views = json.load(response)["views"]
    homes = [v for v in views if v.get("type") == "home"]
    return homes[-1] if homes else {}


async def _click_home(driver: SlackDriver, serve: ServeProcess, home: dict[str, Any], user: str) -> None:
    """Click the Unlock button on ``user``'s Home tab, as Slack sends a click in a view."""
    from urllib.parse import urlencode

    button = next(
        b["accessory"]
        for b in home["blocks"]
        if (b.get("accessory") or {}).get("action_id") == actions.UNLOCK
    )
    workspace = await driver.emulator.workspace()
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user, "team_id": workspace["team_id"]},
        "api_app_id": workspace["app_id"],
        "token": "sandbox-verification-token",
        "container": {"type": "view", "view_id": home["id"]},
        "trigger_id": await driver.emulator.trigger(user),
        "team": {"id": workspace["team_id"], "domain": workspace["team_domain"]},
        "view": home,
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "lock",
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    answer = await driver.send(
        urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
    )
    assert answer.status == 200
