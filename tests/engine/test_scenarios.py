"""Whole deployments through the engine, on the in-memory stand-ins and on the emulators.

Each test builds the stack the way ``shipthread serve`` does (``bot.container.build``) and drives
it tick by tick, asserting on what the cluster, Jenkins, the store and the chat ended up with.
Every test runs on the stand-ins with a manual clock (the fast tier, ``-m fast``); those marked
``BOTH`` — one full scenario per strategy, a failed build, a failed rollout and a guard breach —
also run with the real clients against the emulators and a real Prometheus on the real clock.
"""

from __future__ import annotations

from bot.domain.commands import Deploy, Rollback
from bot.domain.deployment import Deployment
from bot.domain.locks import LockKind
from bot.domain.notifications import (
    SKIPPED,
    ApprovalNeeded,
    EnvLocked,
    EnvUnlocked,
    GuardVerdict,
    Notification,
    Refused,
)
from bot.domain.phases import Phase
from bot.domain.watch import WatchStatus
from bot.sandbox.chat import RecordingChat
from tests.engine.stack import BOTH, playbook
from tests.engine.typed import StackOf, deployment_of

IMAGE = "registry.example.com/checkout:{}"


@BOTH
async def test_rolling_happy_path(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.ratio("checkout", 0.01)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    assert outcome.ok, outcome.message
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    assert dep.previous_version == "1.0.0"
    assert stack.image("checkout") == IMAGE.format("1.1.0")
    builds = stack.builds("checkout-build")
    assert len(builds) == 1
    assert builds[0].parameters["VERSION"] == "1.1.0"
    assert builds[0].parameters["SHIPTHREAD_KEY"] == f"{dep.id}:build:1"
    verdicts = [n for n in stack.chat.notifications if isinstance(n, GuardVerdict)]
    assert [v.verdict for v in verdicts] == ["pass"]
    assert not await stack.store.pending_effects()


async def test_a_step_without_a_guard_moves_on_skipped_not_passed(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run)
    del book["environments"]["production"]["guard"]
    stack = await stack_of(book)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    assert stack.image("checkout") == IMAGE.format("1.1.0")
    verdicts = [(n.verdict, n.reason) for n in stack.chat.notifications if isinstance(n, GuardVerdict)]
    assert verdicts == [(SKIPPED, "no guard for this step")]


@BOTH
async def test_canary_with_three_steps(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, strategy="canary", steps=(10, 50, 100))
    stack = await stack_of(book)
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "2.0.0"), "U0ALICE", "C0DEPLOYS")
    seen_steps: set[int] = set()

    def progressed(dep: Deployment) -> bool:
        seen_steps.add(dep.step)
        return dep.phase.terminal

    dep = await stack.drive(deployment_of(outcome).id, progressed)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    assert seen_steps >= {0, 1, 2, 3}  # three canary steps, then the promoted main Deployment
    assert stack.image("checkout") == IMAGE.format("2.0.0")
    assert stack.replicas("checkout-canary") == 0
    passes = [n for n in stack.chat.notifications if isinstance(n, GuardVerdict) and n.verdict == "pass"]
    assert len(passes) == 4


@BOTH
async def test_blue_green_switches_the_service(run: str, stack_of: StackOf) -> None:
    book = playbook("payments", run, strategy="blue-green")
    stack = await stack_of(book)
    # Before the first switch the main Deployment's pods are the live colour (blue).
    stack.blue_green("payments")
    stack.ratio("payments", 0.0)
    outcome = await stack.engine.deploy(Deploy("payments", "3.0.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.SUCCEEDED, dep.reason
    selector = stack.selector("payments")
    assert selector["color"] == "green"
    assert stack.image("payments-green") == "registry.example.com/payments:3.0.0"


@BOTH
async def test_jenkins_failure_fails_with_nothing_deployed(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.script_build("checkout-build", result="FAILURE", console="compiling\nerror: <!channel> broke")
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.FAILED
    assert "FAILURE" in (dep.reason or "")
    assert stack.image("checkout") == IMAGE.format("1.0.0")
    assert len(stack.builds("checkout-build")) == 1
    from bot.domain.notifications import BuildProgress

    failed = [n for n in stack.chat.notifications if isinstance(n, BuildProgress) and n.console_tail]
    assert failed and "broke" in (failed[-1].console_tail or "")


@BOTH
async def test_failed_rollout_rolls_back_and_guard_lock_lifts(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.set_bad_images(["*:1.1.0-broken"])
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0-broken"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.ROLLED_BACK, dep.reason
    assert "ProgressDeadlineExceeded" in (dep.reason or "") or "deadline" in (dep.reason or "").lower()
    assert stack.image("checkout") == IMAGE.format("1.0.0")
    locks = await stack.store.active_locks("production")
    assert [lk.kind for lk in locks] == [LockKind.GUARD]
    # The restored version stays clean for a window: the guard lifts its own lock.
    await stack.end_watches()
    assert await stack.store.active_locks("production") == []
    assert any(isinstance(n, EnvUnlocked) for n in stack.chat.notifications)


@BOTH
async def test_guard_breach_rolls_back_locks_and_unlocks_after_clean_window(
    run: str, stack_of: StackOf
) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.ratio("checkout", 0.01)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.2.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.drive(deployment_of(outcome).id, lambda d: d.phase is Phase.VERIFYING)
    stack.ratio("checkout", 0.20)  # the new version serves 20 % errors
    dep = await stack.finish(dep.id)
    assert dep.phase is Phase.ROLLED_BACK
    assert "5xx ratio" in (dep.reason or "")
    assert stack.image("checkout") == IMAGE.format("1.0.0")
    assert any(isinstance(n, EnvLocked) and n.kind == "guard" for n in stack.chat.notifications)
    # While the ratio stays high, the lock holds and says why.
    await stack.tick_for(0.8)
    assert [lk.kind for lk in await stack.store.active_locks("production")] == [LockKind.GUARD]
    refused = await stack.engine.deploy(Deploy("checkout", "1.2.1"), "U0ALICE", "C0DEPLOYS")
    assert not refused.ok and "locked" in str(refused.message)
    stack.ratio("checkout", 0.0)  # the restored version recovers
    await stack.end_watches()
    assert await stack.store.active_locks("production") == []
    watches = await stack.store.watches_for("checkout", "production")
    assert watches[-1].status is WatchStatus.CLEARED


async def test_no_data_fail_policy_breaches(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run, no_data="fail"))
    # Nothing is pushed for this run: the check has no data.
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.ROLLED_BACK
    assert "no data" in (dep.reason or "")


async def test_no_data_inconclusive_policy_holds_for_a_person(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, no_data="inconclusive", approvals=[{"group": "sre", "count": 1}])
    stack = await stack_of(book)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    assert (await stack.engine.approve(deployment_of(outcome).id, "U0BOB")).ok
    dep = await stack.drive(deployment_of(outcome).id, lambda d: d.paused)
    assert dep.phase is Phase.VERIFYING
    assert any(isinstance(n, GuardVerdict) and n.verdict == "inconclusive" for n in stack.chat.notifications)
    # Never a silent pass: it waits for a person's judgment.
    for _ in range(5):
        await stack.engine.tick()
    assert (await stack.get(dep.id)).phase is Phase.VERIFYING
    assert not (await stack.engine.promote(dep.id, "U0ALICE")).ok  # the requester cannot judge
    assert (await stack.engine.promote(dep.id, "U0CAROL")).ok
    assert (await stack.get(dep.id)).phase is Phase.SUCCEEDED


async def test_no_data_ignore_policy_is_never_a_pass(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run, no_data="ignore"))
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.drive(deployment_of(outcome).id, lambda d: d.paused or d.phase.terminal)
    # The only check was ignored on every tick: nothing was measured, so it holds, never passes.
    assert dep.phase is Phase.VERIFYING and dep.paused


async def test_approvals_four_eyes_and_two_stages(run: str, stack_of: StackOf) -> None:
    stages = [{"group": "leads", "count": 1}, {"group": "sre", "count": 1}]
    stack = await stack_of(playbook("checkout", run, approvals=stages))
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0BOB", "C0DEPLOYS")
    did = deployment_of(outcome).id
    assert (await stack.get(did)).phase is Phase.AWAITING_APPROVAL
    asked = [n for n in stack.chat.notifications if isinstance(n, ApprovalNeeded)]
    assert [(n.stage, n.group) for n in asked] == [(0, "leads")]
    refused = await stack.engine.approve(did, "U0CAROL")  # sre, but stage 1 is leads
    assert not refused.ok
    assert (await stack.engine.approve(did, "U0DAVE")).ok
    assert (await stack.get(did)).approval_stage == 1
    own = await stack.engine.approve(did, "U0BOB")  # the requester is in sre: still not allowed
    assert not own.ok and "four-eyes" in str(own.message)
    assert (await stack.engine.approve(did, "U0CAROL")).ok
    dep = await stack.finish(did)
    assert dep.phase is Phase.SUCCEEDED
    audit = await stack.store.audit_entries(target=did)
    assert {e.action for e in audit} >= {"deploy", "approve"}
    assert any(e.outcome.startswith("refused") for e in audit)


async def test_approval_expiry(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, approvals=[{"group": "sre", "count": 1}])
    book["environments"]["production"]["approval_ttl"] = 0.3
    stack = await stack_of(book)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    dep = await stack.finish(deployment_of(outcome).id, timeout=5)
    assert dep.phase is Phase.EXPIRED
    late = await stack.engine.approve(dep.id, "U0BOB")
    assert not late.ok
    assert stack.builds() == []


async def test_locked_environment_refuses_and_break_glass_skips_only_freezes(
    run: str, stack_of: StackOf
) -> None:
    freeze = {
        "name": "always",
        "cron": "* * * * *",
        "duration": "2m",
        "envs": ["production"],
        "reason": "holidays",
    }
    stack = await stack_of(
        playbook("checkout", run, approvals=[{"group": "sre", "count": 1}]),
        config={"freeze_windows": [freeze]},
    )
    stack.ratio("checkout", 0.0)
    frozen = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE", "C0DEPLOYS")
    assert not frozen.ok and "holidays" in str(frozen.message)
    assert await stack.store.active_deployments() == []
    assert any(isinstance(n, Refused) for n in stack.chat.notifications)
    not_allowed = await stack.engine.deploy(Deploy("checkout", "1.1.0", emergency_reason="outage"), "U0ALICE")
    assert not not_allowed.ok  # alice is not in the break-glass group
    emergency = await stack.engine.deploy(Deploy("checkout", "1.1.0", emergency_reason="outage"), "U0ERIN")
    assert emergency.ok, emergency.message
    dep = await stack.finish(deployment_of(emergency).id)
    assert dep.phase is Phase.SUCCEEDED and dep.emergency_reason == "outage"
    audit = await stack.store.audit_entries(target=dep.id)
    assert any(e.action == "emergency" for e in audit)
    # A manual lock holds even against break-glass.
    assert (await stack.engine.lock("production", None, "incident 42", "U0BOB")).ok
    locked = await stack.engine.deploy(Deploy("checkout", "1.1.1", emergency_reason="again"), "U0ERIN")
    assert not locked.ok and "incident 42" in str(locked.message)
    assert (await stack.engine.unlock("production", None, "U0BOB")).ok


async def test_production_requires_staging_first(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(
        playbook("checkout", run, requires_staging=True),
    )
    stack.ratio("checkout", 0.0)
    early = await stack.engine.deploy(Deploy("checkout", "1.1.0", env="production"), "U0ALICE")
    assert not early.ok and "staging" in str(early.message)
    staged = await stack.engine.deploy(Deploy("checkout", "1.1.0", env="staging"), "U0ALICE")
    assert (await stack.finish(deployment_of(staged).id)).phase is Phase.SUCCEEDED
    prod = await stack.engine.deploy(Deploy("checkout", "1.1.0", env="production"), "U0ALICE")
    assert prod.ok, prod.message
    await stack.finish(deployment_of(prod).id)


async def test_second_request_is_refused_while_one_is_active(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, approvals=[{"group": "sre", "count": 1}])
    stack = await stack_of(book)
    first = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")
    second = await stack.engine.deploy(Deploy("checkout", "1.2.0"), "U0ALICE")
    assert not second.ok and deployment_of(first).id in str(second.message)


async def test_rollback_command_undoes_the_last_release(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.3.0"), "U0ALICE")
    assert (await stack.finish(deployment_of(outcome).id)).phase is Phase.SUCCEEDED
    back = await stack.engine.rollback(Rollback("checkout", reason="customers see 1.3.0 bugs"), "U0BOB")
    assert back.ok, back.message
    dep = await stack.finish(deployment_of(back).id)
    assert dep.phase is Phase.ROLLED_BACK and dep.version == "1.0.0"
    assert stack.image("checkout") == IMAGE.format("1.0.0")
    assert [lk.kind for lk in await stack.store.active_locks("production")] == [LockKind.GUARD]
    await stack.end_watches()
    assert await stack.store.active_locks("production") == []


async def test_queue_policy_holds_a_second_request_until_the_first_ends(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(
        playbook("checkout", run),
        config={"concurrency": "queue"},
    )
    stack.ratio("checkout", 0.0)
    first = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")
    second = await stack.engine.deploy(Deploy("checkout", "1.2.0"), "U0BOB")
    assert second.ok and "queued" in str(second.message)
    assert (await stack.get(deployment_of(second).id)).phase is Phase.REQUESTED
    assert (await stack.finish(deployment_of(first).id)).phase is Phase.SUCCEEDED
    dep = await stack.finish(deployment_of(second).id)
    assert dep.phase is Phase.SUCCEEDED and dep.previous_version == "1.0.0"
    assert stack.image("checkout") == IMAGE.format("1.2.0")
    assert len(stack.builds("checkout-build")) == 2


async def test_rollback_command_while_verifying(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, window=30)  # a long window: a person acts before it ends
    stack = await stack_of(book)
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.4.0"), "U0ALICE")
    await stack.drive(deployment_of(outcome).id, lambda d: d.phase is Phase.VERIFYING)
    back = await stack.engine.rollback(Rollback("checkout", reason="latency looks off"), "U0BOB")
    assert back.ok and deployment_of(back).id == deployment_of(outcome).id
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.ROLLED_BACK and dep.reason == "latency looks off"
    assert stack.image("checkout") == IMAGE.format("1.0.0")
    assert [lk.kind for lk in await stack.store.active_locks("production")] == [LockKind.GUARD]
    cancel = await stack.engine.cancel(dep.id, "U0ALICE")
    assert not cancel.ok  # finished: nothing to cancel, and it says so


async def test_breach_with_on_breach_lock_holds_and_locks_without_rolling_back(
    run: str, stack_of: StackOf
) -> None:
    book = playbook("checkout", run, on_breach="lock")
    stack = await stack_of(book)
    stack.ratio("checkout", 0.3)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.5.0"), "U0ALICE")
    dep = await stack.drive(deployment_of(outcome).id, lambda d: d.paused or d.phase.terminal)
    assert dep.phase is Phase.VERIFYING and dep.paused
    assert stack.image("checkout") == IMAGE.format("1.5.0")  # left in place
    assert [lk.kind for lk in await stack.store.active_locks("production")] == [LockKind.GUARD]
    back = await stack.engine.rollback(Rollback("checkout"), "U0BOB")  # a person decides
    assert back.ok
    assert (await stack.finish(dep.id)).phase is Phase.ROLLED_BACK


async def test_post_rollback_window_still_failing_keeps_the_lock_and_says_why(
    run: str, stack_of: StackOf
) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.ratio("checkout", 0.4)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.6.0"), "U0ALICE")
    assert (await stack.finish(deployment_of(outcome).id)).phase is Phase.ROLLED_BACK
    await stack.tick_for(0.75)
    notes = [n for n in stack.chat.notifications if isinstance(n, GuardVerdict) and n.post_rollback]
    assert notes and notes[0].verdict == "fail"
    assert "stays locked" in notes[0].reason and "5xx ratio" in notes[0].reason
    assert len(notes) == 1  # said once, not every window
    assert [lk.kind for lk in await stack.store.active_locks("production")] == [LockKind.GUARD]


class _SlackDown(RecordingChat):
    """A chat whose every delivery fails, as during a Slack outage."""

    async def notify(self, notification: Notification) -> None:
        await super().notify(notification)
        raise ConnectionError("slack.com is unreachable")


async def test_a_chat_outage_never_stalls_a_deployment(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run), chat=_SlackDown())
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.7.0"), "U0ALICE")
    dep = await stack.finish(deployment_of(outcome).id)
    assert dep.phase is Phase.SUCCEEDED
    # The thread's notices are still owed: they stay in the outbox, with why, to be retried.
    pending = await stack.store.pending_effects(dep.id)
    assert pending and {p.effect_type for p in pending} == {"Notify"}
    entry = await stack.store.outbox_entry(pending[0].key)
    assert entry is not None
    assert entry.attempts >= 1 and "unreachable" in (entry.last_error or "")


async def test_an_approver_can_still_reject_after_approving(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, approvals=[{"group": "sre", "count": 2}])
    stack = await stack_of(book)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.8.0"), "U0ALICE")
    did = deployment_of(outcome).id
    assert (await stack.engine.approve(did, "U0BOB")).ok
    assert (await stack.get(did)).phase is Phase.AWAITING_APPROVAL  # one of two
    no = await stack.engine.reject(did, "U0BOB", "the error budget is spent")
    assert no.ok and str(no.message) == f"rejected {did}"
    dep = await stack.get(did)
    assert dep.phase is Phase.REJECTED and dep.reason == "the error budget is spent"
    assert stack.builds() == []


async def test_a_queued_request_gets_its_full_approval_time(run: str, stack_of: StackOf) -> None:
    book = playbook("checkout", run, approvals=[{"group": "sre", "count": 1}])
    book["environments"]["production"]["approval_ttl"] = 1.5
    stack = await stack_of(book, config={"concurrency": "queue"})
    stack.ratio("checkout", 0.0)
    first = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ALICE")
    second = await stack.engine.deploy(Deploy("checkout", "1.2.0"), "U0ALICE")
    await stack.wait(1.6)  # the second request waits in the queue longer than its approval time
    assert (await stack.engine.approve(deployment_of(first).id, "U0BOB")).ok
    assert (await stack.finish(deployment_of(first).id)).phase is Phase.SUCCEEDED
    await stack.engine.tick()
    assert (await stack.get(deployment_of(second).id)).phase is Phase.AWAITING_APPROVAL  # not expired
    assert (await stack.finish(deployment_of(second).id, timeout=5)).phase is Phase.EXPIRED


# -- who may roll back, unlock and promote (issue 10 review) -------------------------------------


async def test_a_non_approver_cannot_roll_a_locked_environment_to_a_version_that_never_ran(
    run: str, stack_of: StackOf
) -> None:
    stack = await stack_of(playbook("checkout", run, approvals=[{"group": "sre", "count": 1}]))
    assert (await stack.engine.lock("production", None, "incident 42", "U0BOB")).ok
    refused = await stack.engine.deploy(Deploy("checkout", "9.9.9"), "U0MALLORY")
    assert not refused.ok
    sneaky = await stack.engine.rollback(Rollback("checkout", to_version="9.9.9"), "U0MALLORY")
    assert not sneaky.ok and "approver of production" in str(sneaky.message)
    # An approver may roll back, but only to a version that ran there, and not through a manual lock.
    never_ran = await stack.engine.rollback(Rollback("checkout", to_version="9.9.9"), "U0BOB")
    assert not never_ran.ok and "never succeeded in production" in str(never_ran.message)
    glass = await stack.engine.rollback(Rollback("checkout", to_version="9.9.9"), "U0ERIN")
    assert not glass.ok and "incident 42" in str(glass.message)  # break-glass names any, locks hold
    assert await stack.store.active_deployments() == []
    assert stack.image("checkout") == IMAGE.format("1.0.0")


async def test_two_rollbacks_of_one_release_roll_back_once(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run))
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.3.0"), "U0ALICE")
    assert (await stack.finish(deployment_of(outcome).id)).phase is Phase.SUCCEEDED
    first = await stack.engine.rollback(Rollback("checkout"), "U0ALICE")
    second = await stack.engine.rollback(Rollback("checkout"), "U0BOB")
    assert first.ok, first.message
    assert not second.ok and "already rolling back" in str(second.message)
    assert deployment_of(first).id in str(second.message)
    assert (await stack.finish(deployment_of(first).id)).phase is Phase.ROLLED_BACK
    await stack.tick_for(0.3)
    history = await stack.store.history("checkout", "production", limit=10)
    assert [d.is_rollback for d in history].count(True) == 1
    assert not [d for d in await stack.store.active_deployments() if d.phase is Phase.REQUESTED]
    assert sum(isinstance(n, EnvLocked) for n in stack.chat.notifications) == 1
    # A Roll back drawn for the release that was just rolled back undoes nothing else.
    again = await stack.engine.rollback(
        Rollback("checkout"), "U0ALICE", deployment_id=deployment_of(outcome).id
    )
    assert not again.ok and "no longer the release live" in str(again.message)


async def test_a_roll_back_button_never_rolls_back_another_deployment(run: str, stack_of: StackOf) -> None:
    stack = await stack_of(playbook("checkout", run, window=3))  # long enough to click in verifying
    stack.ratio("checkout", 0.0)
    done = await stack.engine.deploy(Deploy("checkout", "1.3.0"), "U0ALICE")
    assert (await stack.finish(deployment_of(done).id)).phase is Phase.SUCCEEDED
    live = await stack.engine.deploy(Deploy("checkout", "1.4.0"), "U0ALICE")
    await stack.drive(deployment_of(live).id, lambda d: d.phase is Phase.VERIFYING)
    old_card = await stack.engine.rollback(
        Rollback("checkout"), "U0ALICE", deployment_id=deployment_of(done).id
    )
    assert not old_card.ok and deployment_of(live).id in str(old_card.message)
    assert (await stack.get(deployment_of(live).id)).phase is Phase.VERIFYING
    assert stack.image("checkout") == IMAGE.format("1.4.0")


async def test_two_promotes_of_one_held_step_promote_it_once(run: str, stack_of: StackOf) -> None:
    book = playbook(
        "checkout",
        run,
        strategy="canary",
        steps=(25, 50),
        no_data="inconclusive",
        approvals=[{"group": "sre", "count": 1}],
    )
    stack = await stack_of(book)
    outcome = await stack.engine.deploy(Deploy("checkout", "2.0.0"), "U0ALICE", "C0DEPLOYS")
    assert (await stack.engine.approve(deployment_of(outcome).id, "U0BOB")).ok
    held = await stack.drive(deployment_of(outcome).id, lambda d: d.paused)
    assert held.phase is Phase.VERIFYING and held.step == 0
    assert (await stack.engine.promote(held.id, "U0BOB", step=held.step)).ok
    late = await stack.engine.promote(held.id, "U0CAROL", step=held.step)
    assert not late.ok
    # Even once the next step is held in its turn, the old button does not promote it.
    nxt = await stack.drive(held.id, lambda d: d.paused and d.step == 1)
    later = await stack.engine.promote(held.id, "U0CAROL", step=held.step)
    assert not later.ok and "moved on" in str(later.message)
    assert (await stack.get(held.id)).step == nxt.step == 1


async def test_an_approve_drawn_for_an_earlier_stage_does_not_vote_in_the_next(
    run: str, stack_of: StackOf
) -> None:
    stages = [{"group": "leads", "count": 1}, {"group": "sre", "count": 1}]
    stack = await stack_of(playbook("checkout", run, approvals=stages))
    outcome = await stack.engine.deploy(Deploy("checkout", "1.1.0"), "U0ERIN", "C0DEPLOYS")
    did = deployment_of(outcome).id
    assert (await stack.engine.approve(did, "U0DAVE", stage=0)).ok
    assert (await stack.get(did)).approval_stage == 1
    stale = await stack.engine.approve(did, "U0BOB", stage=0)
    assert not stale.ok and "stage 1" in str(stale.message)
    assert (await stack.get(did)).phase is Phase.AWAITING_APPROVAL
    assert (await stack.engine.approve(did, "U0BOB", stage=1)).ok


async def test_unlock_is_the_engines_rule_and_an_unlock_button_lifts_only_its_lock(
    run: str, stack_of: StackOf
) -> None:
    stack = await stack_of(playbook("checkout", run))  # production needs no approvals
    stack.ratio("checkout", 0.0)
    outcome = await stack.engine.deploy(Deploy("checkout", "1.3.0"), "U0ALICE")
    assert (await stack.finish(deployment_of(outcome).id)).phase is Phase.SUCCEEDED
    back = await stack.engine.rollback(Rollback("checkout"), "U0BOB")
    assert (await stack.finish(deployment_of(back).id)).phase is Phase.ROLLED_BACK
    assert (await stack.engine.lock("production", "checkout", "looking into it", "U0CAROL")).ok
    locks = {lk.kind: lk for lk in await stack.store.active_locks("production")}
    guard, manual = locks[LockKind.GUARD], locks[LockKind.MANUAL]
    assert guard.id is not None and manual.id is not None  # stored locks have ids
    # Nobody approves here, yet a stranger may not lift the guard's lock: only those involved may.
    stranger = await stack.engine.unlock("production", "checkout", "U0MALLORY")
    assert not stranger.ok and "guard lock" in str(stranger.message)
    assert not (await stack.engine.unlock_lock(guard.id, "U0MALLORY")).ok
    assert {lk.id for lk in await stack.store.active_locks("production")} == {guard.id, manual.id}
    # The Unlock button of one lock lifts that lock, not the other one there.
    assert (await stack.engine.unlock_lock(manual.id, "U0CAROL")).ok
    assert [lk.id for lk in await stack.store.active_locks("production")] == [guard.id]
    assert not (await stack.engine.unlock_lock(manual.id, "U0CAROL")).ok  # already lifted
    assert (await stack.engine.unlock_lock(guard.id, "U0BOB")).ok  # who asked for the rollback
    assert await stack.store.active_locks("production") == []
