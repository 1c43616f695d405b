"""The repository against real databases: SQLite and PostgreSQL, each test on a fresh one."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from bot.domain.approvals import Vote
from bot.domain.audit import AuditEntry as DomainAuditEntry
from bot.domain.deployment import Deployment, Strategy
from bot.domain.locks import Lock, LockKind
from bot.domain.measurements import TickOutcome
from bot.domain.phases import TERMINAL, Phase
from bot.domain.watch import GuardWatch, WatchStatus
from bot.errors import Busy, DuplicateDeployment, NotFound, StaleDeployment, TransientError
from bot.store.models import NOT_EXCLUSIVE_PHASES, DeploymentRow
from bot.store.repository import AuditEntry, Repository, SlackRef, StoredEvent

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def deployment(
    dep_id: str = "d1",
    *,
    service: str = "checkout",
    env: str = "production",
    phase: Phase = Phase.REQUESTED,
    created: float = 0,
    **changes: object,
) -> Deployment:
    dep = Deployment(
        id=dep_id,
        service=service,
        env=env,
        version="1.4.2",
        strategy=Strategy.ROLLING,
        requester="U_ALICE",
        phase=phase,
        created_at=at(created),
        updated_at=at(created),
    )
    return dataclasses.replace(dep, **changes)  # type: ignore[arg-type]


def lock(
    env: str,
    service: str | None = None,
    kind: LockKind = LockKind.MANUAL,
    *,
    reason: str = "because",
    author: str = "U_OPS",
    created: float = 0,
    deployment_id: str | None = None,
) -> Lock:
    return Lock(
        id=None,
        env=env,
        service=service,
        kind=kind,
        reason=reason,
        author=author,
        created_at=at(created),
        deployment_id=deployment_id,
    )


async def stored(repo: Repository, *deps: Deployment) -> None:
    for dep in deps:
        await repo.create_deployment(dep, "Requested", {"by": dep.requester})


# -- deployments ----------------------------------------------------------------------------------


def test_every_field_of_deployment_is_a_column() -> None:
    # ``due_at`` is the timer's (``bot.store.due_work``), not part of the deployment's value.
    columns = set(DeploymentRow.__table__.columns.keys()) - {"due_at"}
    assert columns == {f.name for f in dataclasses.fields(Deployment)}


async def test_every_field_round_trips(repo: Repository) -> None:
    dep = Deployment(
        id="dep-full",
        service="checkout",
        env="production",
        version="1.4.2",
        strategy=Strategy.BLUE_GREEN,
        requester="U_ALICE",
        phase=Phase.VERIFYING,
        created_at=at(0),
        updated_at=at(5),
        version_no=7,
        emergency_reason="pager: checkout down <!channel>",
        is_rollback=True,
        previous_version="1.4.1",
        approval_stage=2,
        build_attempt=3,
        build_queue_item=41,
        build_number=17,
        step=1,
        guard_started_at=at(4),
        change_started_at=at(3),
        guard_ticks=9,
        guard_failed_ticks=2,
        guard_inconclusive_ticks=1,
        paused=True,
        reason="guard inconclusive — naïve «quotes»",
    )
    defaults = deployment()
    differing = [
        f.name for f in dataclasses.fields(Deployment) if getattr(dep, f.name) == getattr(defaults, f.name)
    ]
    assert differing == ["service", "env", "version", "requester", "created_at"]  # the rest is non-default
    await repo.create_deployment(dep, "Requested", {})
    assert await repo.get_deployment("dep-full") == dep


async def test_unknown_deployment_is_none(repo: Repository) -> None:
    assert await repo.get_deployment("nope") is None
    assert await repo.events_for("nope") == []


async def test_create_appends_the_first_event(repo: Repository) -> None:
    dep = deployment()
    await repo.create_deployment(dep, "Requested", {"text": "checkout 1.4.2", "n": [1, 2]})
    assert await repo.get_deployment("d1") == dep
    assert await repo.events_for("d1") == [
        StoredEvent(
            deployment_id="d1",
            seq=1,
            type="Requested",
            payload={"text": "checkout 1.4.2", "n": [1, 2]},
            at=at(0),
        )
    ]


async def test_duplicate_id_is_refused_and_writes_nothing(repo: Repository) -> None:
    first = deployment()
    await repo.create_deployment(first, "Requested", {})
    with pytest.raises(DuplicateDeployment, match="d1"):
        await repo.create_deployment(deployment(version="9.9.9"), "Requested", {"again": True})
    assert await repo.get_deployment("d1") == first
    assert [e.payload for e in await repo.events_for("d1")] == [{}]


async def test_transition_updates_the_row_and_appends_its_event(repo: Repository) -> None:
    dep = deployment()
    await stored(repo, dep)
    waiting = dep.with_phase(Phase.AWAITING_APPROVAL, at(1))
    await repo.save_transition(waiting, 0, "ApprovalsRequired", {"stages": ["sre"]}, at(1))
    saved = await repo.get_deployment("d1")
    assert saved == waiting
    assert saved.version_no == 1
    building = dataclasses.replace(saved.with_phase(Phase.BUILDING, at(2)), build_queue_item=12)
    await repo.save_transition(building, 1, "Approved", {"by": "U_BOB"}, at(2))

    assert await repo.get_deployment("d1") == building
    events = await repo.events_for("d1")
    assert [(e.seq, e.type, e.payload, e.at) for e in events] == [
        (1, "Requested", {"by": "U_ALICE"}, at(0)),
        (2, "ApprovalsRequired", {"stages": ["sre"]}, at(1)),
        (3, "Approved", {"by": "U_BOB"}, at(2)),
    ]


async def test_stored_version_no_is_always_expected_plus_one(repo: Repository) -> None:
    dep = deployment()
    await stored(repo, dep)
    progressed = dataclasses.replace(dep, step=2)  # copied without bumping version_no
    await repo.save_transition(progressed, 0, "CanaryStepDone", {}, at(1))
    assert await repo.get_deployment("d1") == dataclasses.replace(progressed, version_no=1)


async def test_stale_version_raises_and_writes_nothing(repo: Repository) -> None:
    dep = deployment()
    await stored(repo, dep)
    current = dep.with_phase(Phase.AWAITING_APPROVAL, at(1))
    await repo.save_transition(current, 0, "A", {}, at(1))

    with pytest.raises(StaleDeployment) as raised:
        await repo.save_transition(dep.with_phase(Phase.CANCELLED, at(2)), 0, "Cancelled", {}, at(2))
    assert isinstance(raised.value, TransientError)
    assert raised.value.deployment_id == "d1"
    assert await repo.get_deployment("d1") == current
    assert [e.type for e in await repo.events_for("d1")] == ["Requested", "A"]


async def test_transition_of_an_unknown_deployment_is_stale(repo: Repository) -> None:
    with pytest.raises(StaleDeployment):
        await repo.save_transition(deployment("ghost"), 0, "A", {}, at(1))
    assert await repo.events_for("ghost") == []


async def test_concurrent_transitions_exactly_one_wins(repo: Repository) -> None:
    dep = deployment()
    await stored(repo, dep)
    rivals = [Phase.AWAITING_APPROVAL, Phase.CANCELLED, Phase.FAILED, Phase.BUILDING, Phase.REJECTED]
    results = await asyncio.gather(
        *(repo.save_transition(dep.with_phase(p, at(1)), 0, p.value, {}, at(1)) for p in rivals),
        return_exceptions=True,
    )
    winners = [phase for phase, result in zip(rivals, results, strict=True) if result is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, StaleDeployment) for r in results if r is not None)
    assert await repo.get_deployment("d1") == dep.with_phase(winners[0], at(1))
    assert [e.type for e in await repo.events_for("d1")] == ["Requested", winners[0].value]


# -- one active deployment per service and environment -------------------------------------------


def test_the_index_exempts_exactly_requested_and_the_terminal_phases() -> None:
    # The index lives in a migration: a new phase needs a new migration, and this says so.
    assert set(NOT_EXCLUSIVE_PHASES) == {Phase.REQUESTED.value} | {p.value for p in TERMINAL}


async def test_two_queued_requests_only_one_may_go_ahead(repo: Repository) -> None:
    first, second = deployment("q1"), deployment("q2", created=1)
    await stored(repo, first, second)
    results = await asyncio.gather(
        *(
            repo.save_transition(
                d.with_phase(Phase.AWAITING_APPROVAL, at(2)), 0, "ApprovalsRequired", {}, at(2)
            )
            for d in (first, second)
        ),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Busy", "NoneType"], results
    busy = next(r for r in results if isinstance(r, Busy))
    assert isinstance(busy, TransientError)
    assert str(busy) == "checkout already has an active deployment in production"
    assert (busy.service, busy.env) == ("checkout", "production")

    winner = "q1" if results[0] is None else "q2"
    loser = busy.deployment_id
    assert {winner, loser} == {"q1", "q2"}
    lost = await repo.get_deployment(loser)
    assert lost is not None and (lost.phase, lost.version_no) == (Phase.REQUESTED, 0)
    assert [e.type for e in await repo.events_for(loser)] == ["Requested"]
    assert [d.id for d in await repo.active_deployments("checkout", "production")] == ["q1", "q2"]


async def test_busy_transition_writes_nothing_and_the_queue_moves_on(repo: Repository) -> None:
    await stored(repo, deployment("live", phase=Phase.VERIFYING), deployment("next", created=1))
    queued = deployment("next", created=1)
    with pytest.raises(Busy):
        await repo.save_transition(queued.with_phase(Phase.AWAITING_APPROVAL, at(2)), 0, "A", {}, at(2))
    assert await repo.get_deployment("next") == queued
    assert [e.type for e in await repo.events_for("next")] == ["Requested"]

    # Other services and environments are not held; cancelling or finishing stays allowed.
    await stored(
        repo,
        deployment("cart", service="cart", phase=Phase.BUILDING, created=3),
        deployment("staging", env="staging", phase=Phase.BUILDING, created=4),
    )
    await repo.save_transition(queued.with_phase(Phase.CANCELLED, at(3)), 0, "Cancelled", {}, at(3))

    live = await repo.get_deployment("live")
    assert live is not None
    await repo.save_transition(live.with_phase(Phase.SUCCEEDED, at(5)), 0, "GuardPassed", {}, at(5))
    after = deployment("after", created=6)
    await stored(repo, after)
    await repo.save_transition(after.with_phase(Phase.AWAITING_APPROVAL, at(7)), 0, "A", {}, at(7))
    current = await repo.get_deployment("after")
    assert current is not None and current.phase is Phase.AWAITING_APPROVAL


async def test_creating_a_second_active_deployment_is_busy(repo: Repository) -> None:
    await stored(repo, deployment("live", phase=Phase.ROLLING_BACK))
    with pytest.raises(Busy, match="checkout already has an active deployment in production"):
        await repo.create_deployment(
            deployment("emergency", phase=Phase.BUILDING, created=1), "Requested", {}
        )
    assert await repo.get_deployment("emergency") is None
    assert await repo.events_for("emergency") == []


async def test_timestamps_come_back_aware_utc(repo: Repository) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 14, 0, 0, tzinfo=plus_two)
    await stored(repo, deployment(created_at=local, updated_at=local, guard_started_at=local))
    got = await repo.get_deployment("d1")
    assert got is not None
    for value in (got.created_at, got.updated_at, got.guard_started_at):
        assert value == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
        assert value is not None and value.tzinfo is UTC


async def test_naive_timestamps_are_refused(repo: Repository) -> None:
    naive = datetime(2024, 5, 1, 12, 0, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        await repo.create_deployment(deployment(created_at=naive), "Requested", {})
    assert await repo.get_deployment("d1") is None


async def test_active_deployments_are_the_non_terminal_ones(repo: Repository) -> None:
    # A phase that holds its environment may occur once per (service, env): give each its own env.
    deps = [
        deployment(
            f"d-{p.value}",
            phase=p,
            created=i,
            env="production" if p.value in NOT_EXCLUSIVE_PHASES else f"env-{p.value}",
        )
        for i, p in enumerate(Phase)
    ]
    deps.append(deployment("queued", phase=Phase.REQUESTED, created=40))
    deps.append(deployment("other-svc", service="cart", phase=Phase.BUILDING, created=50))
    deps.append(deployment("other-env", env="staging", phase=Phase.DEPLOYING, created=51))
    await stored(repo, *deps)

    active = await repo.active_deployments(service="checkout")
    assert [d.id for d in active] == [f"d-{p.value}" for p in Phase if p not in TERMINAL] + [
        "queued",
        "other-env",
    ]
    in_production = await repo.active_deployments(service="checkout", env="production")
    assert [d.id for d in in_production] == ["d-requested", "queued"]
    assert [d.id for d in await repo.active_deployments(service="cart")] == ["other-svc"]
    assert [d.id for d in await repo.active_deployments(env="staging")] == ["other-env"]
    assert len(await repo.active_deployments()) == len(Phase) - len(TERMINAL) + 3


async def test_history_is_newest_first_and_limited(repo: Repository) -> None:
    await stored(
        repo,
        *(deployment(f"p{i}", phase=Phase.SUCCEEDED, created=i) for i in range(5)),
        deployment("s1", env="staging", created=10),
        deployment("c1", service="cart", created=11),
    )
    assert [d.id for d in await repo.history("checkout")] == ["s1", "p4", "p3", "p2", "p1", "p0"]
    assert [d.id for d in await repo.history("checkout", env="production", limit=3)] == ["p4", "p3", "p2"]
    assert [d.id for d in await repo.history(None, limit=2)] == ["c1", "s1"]
    assert await repo.history("nothing") == []


async def test_last_succeeded_is_the_latest_to_succeed(repo: Repository) -> None:
    assert await repo.last_succeeded("checkout", "production") is None
    await stored(
        repo,
        deployment("old", phase=Phase.SUCCEEDED, created=0, updated_at=at(30)),
        deployment("newer-start", phase=Phase.SUCCEEDED, created=5, updated_at=at(20)),
        deployment("failed", phase=Phase.FAILED, created=40),
        deployment("running", phase=Phase.VERIFYING, created=41),
        deployment("staging", env="staging", phase=Phase.SUCCEEDED, created=42),
    )
    last = await repo.last_succeeded("checkout", "production")
    assert last is not None and last.id == "old"
    staging = await repo.last_succeeded("checkout", "staging")
    assert staging is not None and staging.id == "staging"


# -- approvals ------------------------------------------------------------------------------------


async def test_one_vote_per_user_and_stage(repo: Repository) -> None:
    await stored(repo, deployment())
    bob = Vote(deployment_id="d1", stage=0, user="U_BOB", approve=True, at=at(1))
    assert await repo.add_vote(bob) is True
    assert await repo.add_vote(dataclasses.replace(bob, at=at(2))) is False  # a double click
    carol = Vote(deployment_id="d1", stage=0, user="U_CAROL", approve=False, at=at(3), reason="not today")
    assert await repo.add_vote(carol) is True
    assert await repo.add_vote(dataclasses.replace(carol, approve=True, at=at(4))) is False  # no un-reject
    bob_next = dataclasses.replace(bob, stage=1, at=at(5))
    assert await repo.add_vote(bob_next) is True
    assert await repo.votes_for("d1") == [bob, carol, bob_next]


async def test_a_rejection_replaces_the_same_persons_approval(repo: Repository) -> None:
    await stored(repo, deployment())
    bob = Vote(deployment_id="d1", stage=0, user="U_BOB", approve=True, at=at(1))
    assert await repo.add_vote(bob) is True
    late_no = dataclasses.replace(bob, approve=False, reason="saw the error budget", at=at(2))
    assert await repo.add_vote(late_no) is True
    assert await repo.add_vote(late_no) is False  # and only once
    assert await repo.votes_for("d1") == [late_no]


async def test_concurrent_duplicate_votes_count_once(repo: Repository) -> None:
    await stored(repo, deployment())
    vote = Vote(deployment_id="d1", stage=0, user="U_BOB", approve=True, at=at(1))
    results = await asyncio.gather(*(repo.add_vote(vote) for _ in range(6)))
    assert sorted(results) == [False] * 5 + [True]
    assert await repo.votes_for("d1") == [vote]


async def test_vote_on_unknown_deployment_is_not_found(repo: Repository) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await repo.add_vote(Vote(deployment_id="ghost", stage=0, user="U_BOB", approve=True, at=at(1)))


# -- locks ----------------------------------------------------------------------------------------


async def test_locks_are_held_until_released_once(repo: Repository) -> None:
    await stored(repo, deployment("rb1", is_rollback=True))
    manual = await repo.add_lock(lock("production", reason="db migration", created=0))
    guard = await repo.add_lock(
        lock("production", "checkout", LockKind.GUARD, author="shipthread", created=1, deployment_id="rb1")
    )
    other = await repo.add_lock(lock("staging", created=2))
    assert manual.id is not None and guard.id is not None and other.id is not None
    assert len({manual.id, guard.id, other.id}) == 3
    assert await repo.active_locks("production") == [manual, guard]
    assert await repo.active_locks() == [manual, guard, other]

    assert await repo.release_lock(manual.id, by="U_OPS", at=at(5)) is True
    assert await repo.release_lock(manual.id, by="U_EVE", at=at(6)) is False
    assert await repo.release_lock(99999, by="U_OPS", at=at(6)) is False
    assert await repo.active_locks("production") == [guard]
    assert await repo.get_lock(manual.id) == dataclasses.replace(
        manual, released_at=at(5), released_by="U_OPS"
    )


async def test_concurrent_releases_release_once(repo: Repository) -> None:
    lock = await repo.add_lock(
        Lock(
            id=None,
            env="production",
            service=None,
            kind=LockKind.MANUAL,
            reason="r",
            author="U",
            created_at=at(0),
        )
    )
    assert lock.id is not None
    results = await asyncio.gather(*(repo.release_lock(lock.id, by=f"U{i}", at=at(1)) for i in range(4)))
    assert sorted(results) == [False, False, False, True]


# -- audit ----------------------------------------------------------------------------------------


async def test_audit_log_is_newest_first_and_filterable(repo: Repository) -> None:
    detail = {"text": "/deploy checkout 1.4.2", "flags": ["--emergency"], "n": 1.5}
    first = await repo.record_audit(
        AuditEntry(
            at=at(0), actor="U_ALICE", action="deploy", outcome="ok", channel="C1", target="d1", detail=detail
        )
    )
    second = await repo.record_audit(
        AuditEntry(
            at=at(1),
            actor="U_EVE",
            action="approve",
            outcome="refused",
            channel=None,
            target="d1",
            detail={"own": True},
        )
    )
    third = await repo.record_audit(
        AuditEntry(at=at(2), actor="U_OPS", action="lock", outcome="ok", channel=None, target=None)
    )
    assert first.id is not None and second.id is not None and third.id is not None
    assert await repo.audit_entries() == [third, second, first]
    assert await repo.audit_entries(limit=2) == [third, second]
    assert await repo.audit_entries(target="d1") == [second, first]
    assert first.detail == detail
    assert (third.channel, third.target, third.detail) == (None, None, {})


async def test_a_long_refusal_is_audited_whole_on_every_backend(repo: Repository) -> None:
    # The outcome and target columns are VARCHAR(128): PostgreSQL refused a longer refusal outright.
    why = "refused: production is locked for checkout (manual: " + "x" * 400 + ")"
    target = "checkout/" + "e" * 200
    entry = await repo.record_audit(
        AuditEntry(at=at(0), actor="U_ALICE", action="deploy", outcome=why, channel="C1", target=target)
    )
    [stored] = await repo.audit_entries(limit=1)
    assert stored == entry
    assert len(stored.outcome) <= 128 and stored.outcome.startswith("refused: production is locked")
    assert stored.outcome.endswith("…")
    assert stored.detail["outcome"] == why and stored.detail["target"] == target


def test_audit_entry_is_the_domain_value() -> None:
    assert AuditEntry is DomainAuditEntry


# -- guard watches --------------------------------------------------------------------------------


def watch(deployment_id: str = "rb1", *, lock_id: int | None = None, env: str = "production") -> GuardWatch:
    return GuardWatch(
        id=None,
        deployment_id=deployment_id,
        service="checkout",
        env=env,
        version="1.4.1",
        lock_id=lock_id,
        started_at=at(10),
    )


async def test_watches_are_stored_ticked_and_cleared(repo: Repository) -> None:
    await stored(repo, deployment("rb1", is_rollback=True), deployment("rb2", env="staging", created=1))
    guard = await repo.add_lock(lock("production", "checkout", LockKind.GUARD, deployment_id="rb1"))
    first = await repo.add_watch(watch(lock_id=guard.id))
    other = await repo.add_watch(dataclasses.replace(watch("rb2", env="staging"), id=12345))
    assert first.id is not None and other.id is not None and other.id != 12345
    assert first == dataclasses.replace(watch(lock_id=guard.id), id=first.id)
    assert await repo.active_watches() == [first, other]

    ticked = first.ticked(TickOutcome.FAIL).ticked(TickOutcome.INCONCLUSIVE)
    again = ticked.next_window(at(20), "5xx ratio 12% > 5%")
    await repo.save_watch(again)
    assert await repo.watches_for("checkout", "production") == [again]
    assert (again.windows, again.ticks, again.last_reason) == (2, 0, "5xx ratio 12% > 5%")
    await repo.save_watch(ticked)
    assert await repo.watches_for("checkout", "production") == [ticked]

    cleared = dataclasses.replace(ticked, status=WatchStatus.CLEARED)
    await repo.save_watch(cleared)
    assert await repo.active_watches() == [other]
    assert await repo.watches_for("checkout", "production") == [cleared]
    assert await repo.watches_for("checkout", "nowhere") == []


async def test_unknown_watches_are_not_found(repo: Repository) -> None:
    await stored(repo, deployment("rb1"))
    with pytest.raises(NotFound):
        await repo.save_watch(dataclasses.replace(watch(), id=4242))
    with pytest.raises(NotFound):
        await repo.save_watch(watch())
    with pytest.raises(NotFound, match="ghost"):
        await repo.add_watch(watch("ghost"))
    with pytest.raises(NotFound):
        await repo.add_watch(watch(lock_id=999))
    assert await repo.active_watches() == []


# -- slack refs -----------------------------------------------------------------------------------


async def test_slack_ref_is_set_moved_and_read(repo: Repository) -> None:
    await stored(repo, deployment())
    assert await repo.get_slack_ref("d1") is None
    await repo.set_slack_ref("d1", "C_DEPLOYS", "1714564800.000100")
    assert await repo.get_slack_ref("d1") == SlackRef("d1", "C_DEPLOYS", "1714564800.000100")
    await repo.set_slack_ref("d1", "C_PROD", "1714564900.000200")
    assert await repo.get_slack_ref("d1") == SlackRef("d1", "C_PROD", "1714564900.000200")
    with pytest.raises(NotFound):
        await repo.set_slack_ref("ghost", "C", "1.2")


# -- idempotency keys -----------------------------------------------------------------------------


async def test_first_claim_wins_and_completion_is_recorded(repo: Repository) -> None:
    assert await repo.get_key("d1:build:1") is None
    assert await repo.claim_key("d1:build:1", at(0)) is True
    assert await repo.claim_key("d1:build:1", at(1)) is False
    claimed = await repo.get_key("d1:build:1")
    assert claimed is not None
    assert (claimed.created_at, claimed.result, claimed.completed) == (at(0), None, False)

    await repo.complete_key("d1:build:1", {"queue_item": 12, "ok": True}, at(2))
    done = await repo.get_key("d1:build:1")
    assert done is not None
    assert (done.created_at, done.result, done.completed_at) == (at(0), {"queue_item": 12, "ok": True}, at(2))
    assert await repo.claim_key("d1:build:1", at(3)) is False


async def test_concurrent_claims_have_one_winner(repo: Repository) -> None:
    results = await asyncio.gather(*(repo.claim_key("slack:1714564800.1:U_BOB", at(0)) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]


async def test_released_claim_may_be_claimed_again_but_not_a_completed_one(repo: Repository) -> None:
    assert await repo.claim_key("k", at(0)) is True
    assert await repo.release_key("k") is True
    assert await repo.get_key("k") is None
    assert await repo.claim_key("k", at(1)) is True
    await repo.complete_key("k", {}, at(2))
    assert await repo.release_key("k") is False
    assert await repo.release_key("unknown") is False
    assert await repo.claim_key("k", at(3)) is False


async def test_completing_an_unclaimed_key_records_it(repo: Repository) -> None:
    await repo.complete_key("late", {"posted": "1.2"}, at(4))
    record = await repo.get_key("late")
    assert record is not None and record.completed and record.result == {"posted": "1.2"}
    assert await repo.claim_key("late", at(5)) is False


async def test_guard_lock_on_unknown_deployment_is_not_found(repo: Repository) -> None:
    with pytest.raises(NotFound, match="ghost"):
        await repo.add_lock(lock("production", kind=LockKind.GUARD, deployment_id="ghost"))
    assert await repo.active_locks() == []
