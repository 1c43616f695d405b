"""Approval policy: stages in order, four-eyes, one person per deployment, break glass, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.approvals import (
    ApprovalProgress,
    Vote,
    VoteCheck,
    approval_deadline,
    check_vote,
    decide_emergency,
    is_expired,
    may_break_glass,
    progress,
    validate_stages,
)
from bot.domain.playbook import ApprovalStage

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
MEMBERS = {
    "leads": frozenset({"alice", "bob", "carol"}),
    "sre": frozenset({"bob", "sam", "sue"}),
    "solo": frozenset({"olga"}),
    "empty": frozenset(),
}
ONE = (ApprovalStage(group="leads", count=1),)
TWO_STAGES = (ApprovalStage(group="leads", count=1), ApprovalStage(group="sre", count=1))
REQUESTER = "dave"


def vote(user: str, stage: int = 0, approve: bool = True, minute: int = 0) -> Vote:
    return Vote("d1", stage, user, approve, T0 + timedelta(minutes=minute), None if approve else "no")


def votes(*specs: tuple[str, int] | tuple[str, int, bool]) -> list[Vote]:
    """Votes one minute apart, in the given order."""
    out = []
    for minute, spec in enumerate(specs):
        user, stage, *rest = spec
        out.append(vote(user, stage, rest[0] if rest else True, minute))
    return out


@pytest.mark.parametrize(
    ("stages", "requester", "cast", "stage", "approvers", "done", "needed"),
    [
        pytest.param((), REQUESTER, [], 0, (), True, 0, id="no stages: approved at once"),
        pytest.param(ONE, REQUESTER, [], 0, ((),), False, 1, id="nothing cast yet"),
        pytest.param(ONE, REQUESTER, votes(("alice", 0)), 1, (("alice",),), True, 0, id="one approval"),
        pytest.param(
            ONE, "alice", votes(("alice", 0)), 0, ((),), False, 1, id="four-eyes: requester in group"
        ),
        pytest.param(ONE, REQUESTER, votes(("sam", 0)), 0, ((),), False, 1, id="not in the group"),
        pytest.param(
            ONE, REQUESTER, votes(("alice", 0), ("alice", 0)), 1, (("alice",),), True, 0, id="double click"
        ),
        pytest.param(
            (ApprovalStage(group="leads", count=2),),
            REQUESTER,
            votes(("alice", 0), ("alice", 0)),
            0,
            (("alice",),),
            False,
            1,
            id="same person twice does not make two",
        ),
        pytest.param(
            (ApprovalStage(group="leads", count=2),),
            REQUESTER,
            votes(("alice", 0), ("carol", 0)),
            1,
            (("alice", "carol"),),
            True,
            0,
            id="two distinct approvals",
        ),
        pytest.param(
            TWO_STAGES, REQUESTER, votes(("alice", 0)), 1, (("alice",), ()), False, 1, id="first stage done"
        ),
        pytest.param(
            TWO_STAGES,
            REQUESTER,
            votes(("alice", 0), ("sam", 1)),
            2,
            (("alice",), ("sam",)),
            True,
            0,
            id="both stages",
        ),
        pytest.param(
            TWO_STAGES,
            REQUESTER,
            votes(("bob", 0), ("bob", 1)),
            1,
            (("bob",), ()),
            False,
            1,
            id="one person cannot satisfy two stages",
        ),
        pytest.param(
            TWO_STAGES,
            REQUESTER,
            votes(("sam", 1)),
            0,
            ((), ()),
            False,
            1,
            id="vote for a stage not yet current is ignored",
        ),
        pytest.param(
            TWO_STAGES,
            REQUESTER,
            votes(("alice", 0), ("carol", 0)),
            1,
            (("alice",), ()),
            False,
            1,
            id="late vote for a finished stage does not spill over",
        ),
        pytest.param(
            (ApprovalStage(group="nobody-defined-this", count=1),),
            REQUESTER,
            votes(("alice", 0)),
            0,
            ((),),
            False,
            1,
            id="undefined group has no members",
        ),
    ],
)
def test_progress(
    stages: tuple[ApprovalStage, ...],
    requester: str,
    cast: list[Vote],
    stage: int,
    approvers: tuple[tuple[str, ...], ...],
    done: bool,
    needed: int,
) -> None:
    state = progress(stages, MEMBERS, requester, cast)
    assert state == ApprovalProgress(
        stage=stage, approvers=approvers, done=done, rejected_by=None, needed=needed
    )
    assert state.waiting is (not done)


def test_votes_are_replayed_in_time_order() -> None:
    late_for_stage_0 = vote("carol", 0, minute=5)
    first = vote("alice", 0, minute=1)
    second = vote("sam", 1, minute=2)
    state = progress(TWO_STAGES, MEMBERS, REQUESTER, [late_for_stage_0, second, first])
    assert state.done
    assert state.approvers == (("alice",), ("sam",))
    assert state.approved_by == frozenset({"alice", "sam"})


@pytest.mark.parametrize(
    ("cast", "rejected_by_user"),
    [
        pytest.param(votes(("carol", 0, False)), "carol", id="member rejects"),
        pytest.param(votes(("alice", 0), ("sue", 1, False)), "sue", id="second stage rejects"),
        pytest.param(
            votes(("alice", 0), ("alice", 0, False)), None, id="stage already done: late reject ignored"
        ),
        pytest.param(votes(("sam", 0, False)), None, id="non-member reject ignored"),
        pytest.param(votes((REQUESTER, 0, False)), None, id="requester reject ignored"),
        pytest.param(votes(("sam", 1, False)), None, id="reject for a future stage ignored"),
    ],
)
def test_rejections(cast: list[Vote], rejected_by_user: str | None) -> None:
    stages = TWO_STAGES
    state = progress(stages, MEMBERS, REQUESTER, cast)
    if rejected_by_user is None:
        assert state.rejected_by is None
        assert not state.rejected
    else:
        assert state.rejected_by is not None
        assert state.rejected_by.user == rejected_by_user
        assert state.rejected and not state.done and not state.waiting
        assert state.needed == 0


def test_rejection_stops_the_collection() -> None:
    cast = votes(("carol", 0, False), ("alice", 0), ("sam", 1))
    state = progress(TWO_STAGES, MEMBERS, REQUESTER, cast)
    assert state.rejected_by == cast[0]
    assert state.stage == 0
    assert state.approvers == ((), ())
    assert not state.done


def test_an_approver_may_still_reject_their_stage() -> None:
    stages = (ApprovalStage(group="leads", count=2),)
    cast = votes(("alice", 0), ("alice", 0, False))
    assert check_vote(stages, MEMBERS, REQUESTER, cast[:1], "alice", 0, approve=False).allowed
    assert progress(stages, MEMBERS, REQUESTER, cast).rejected_by == cast[1]


@pytest.mark.parametrize(
    ("stages", "cast", "user", "stage", "approve", "reason"),
    [
        pytest.param(ONE, [], "alice", 0, True, None, id="allowed"),
        pytest.param(ONE, [], "alice", 0, False, None, id="reject allowed"),
        pytest.param(
            ONE,
            [],
            REQUESTER,
            0,
            True,
            "you requested this deployment: someone else must approve (four-eyes)",
            id="four-eyes",
        ),
        pytest.param(
            ONE,
            [],
            REQUESTER,
            0,
            False,
            "you requested this deployment: cancel it rather than reject it",
            id="requester rejects",
        ),
        pytest.param(ONE, [], "sam", 0, True, "you are not in group leads", id="not in group"),
        pytest.param(
            (ApprovalStage(group="leads", count=2),),
            votes(("alice", 0)),
            "alice",
            0,
            True,
            "you already approved",
            id="already approved",
        ),
        pytest.param(
            TWO_STAGES,
            votes(("bob", 0)),
            "bob",
            1,
            True,
            "you already approved at stage 1: one person counts for one stage only, "
            "someone else must approve this one",
            id="already approved an earlier stage",
        ),
        pytest.param(TWO_STAGES, votes(("bob", 0)), "bob", 1, False, None, id="earlier approver may reject"),
        pytest.param(
            TWO_STAGES,
            [],
            "sam",
            1,
            True,
            "this deployment is not waiting for approvals at stage 2 (it is at stage 1 of 2)",
            id="wrong stage",
        ),
        pytest.param(
            TWO_STAGES,
            votes(("alice", 0)),
            "carol",
            0,
            True,
            "this deployment is not waiting for approvals at stage 1 (it is at stage 2 of 2)",
            id="stage already passed",
        ),
        pytest.param(
            ONE,
            votes(("alice", 0)),
            "carol",
            0,
            True,
            "this deployment is not waiting for approvals any more (all stages approved)",
            id="already done",
        ),
        pytest.param(
            ONE,
            votes(("alice", 0, False)),
            "carol",
            0,
            True,
            "this deployment was already rejected",
            id="already rejected",
        ),
        pytest.param(
            (),
            [],
            "carol",
            0,
            True,
            "this deployment is not waiting for approvals any more (all stages approved)",
            id="no stages at all",
        ),
    ],
)
def test_check_vote(
    stages: tuple[ApprovalStage, ...],
    cast: list[Vote],
    user: str,
    stage: int,
    approve: bool,
    reason: str | None,
) -> None:
    check = check_vote(stages, MEMBERS, REQUESTER, cast, user, stage, approve=approve)
    assert check == VoteCheck(allowed=reason is None, reason=reason)


USERS = ["alice", "bob", "carol", "sam", "sue", "olga", REQUESTER, "mallory"]
stage_strategy = st.builds(
    ApprovalStage,
    group=st.sampled_from(["leads", "sre", "solo"]),
    count=st.integers(min_value=1, max_value=3),
)
vote_strategy = st.tuples(st.sampled_from(USERS), st.integers(min_value=0, max_value=3), st.booleans())


@settings(max_examples=300, deadline=None)
@given(
    stages=st.lists(stage_strategy, max_size=3),
    requester=st.sampled_from(USERS),
    cast=st.lists(vote_strategy, max_size=12),
)
def test_progress_invariants(
    stages: list[ApprovalStage], requester: str, cast: list[tuple[str, int, bool]]
) -> None:
    state = progress(stages, MEMBERS, requester, votes(*cast))
    counted = [user for users in state.approvers for user in users]
    assert requester not in counted
    assert len(counted) == len(set(counted)), "one person counted twice"
    for stage, users in zip(stages, state.approvers, strict=True):
        assert set(users) <= MEMBERS[stage.group]
        assert len(users) <= stage.count
    assert state.done == (state.rejected_by is None and state.stage == len(stages))
    if state.waiting:
        assert state.needed == stages[state.stage].count - len(state.approvers[state.stage]) > 0
        assert all(
            len(users) == s.count for s, users in zip(stages[: state.stage], state.approvers, strict=False)
        )
    else:
        assert state.needed == 0


@settings(max_examples=300, deadline=None)
@given(
    stages=st.lists(stage_strategy, min_size=1, max_size=3),
    requester=st.sampled_from(USERS),
    cast=st.lists(vote_strategy, max_size=10),
    click=vote_strategy,
)
def test_check_vote_agrees_with_progress(
    stages: list[ApprovalStage],
    requester: str,
    cast: list[tuple[str, int, bool]],
    click: tuple[str, int, bool],
) -> None:
    """An allowed click changes the progress as promised; a refused one would change nothing."""
    before_votes = votes(*cast)
    user, stage, approve = click
    before = progress(stages, MEMBERS, requester, before_votes)
    check = check_vote(stages, MEMBERS, requester, before_votes, user, stage, approve=approve)
    after = progress(
        stages, MEMBERS, requester, [*before_votes, vote(user, stage, approve, minute=len(cast))]
    )
    assert check.allowed == (check.reason is None)
    if not check.allowed:
        assert after == before
    elif approve:
        assert len(after.approved_by) == len(before.approved_by) + 1
        assert user in after.approved_by
    else:
        assert after.rejected_by is not None
        assert after.rejected_by.user == user


@pytest.mark.parametrize(
    ("stages", "members", "problems"),
    [
        pytest.param(TWO_STAGES, MEMBERS, [], id="fine"),
        pytest.param((), MEMBERS, [], id="no stages"),
        pytest.param(
            (ApprovalStage(group="ops", count=1),),
            MEMBERS,
            ["stage 1: group ops is not defined"],
            id="undefined",
        ),
        pytest.param(
            (ApprovalStage(group="empty", count=1),),
            MEMBERS,
            ["stage 1: group empty has no members"],
            id="empty",
        ),
        pytest.param(
            (ApprovalStage(group="leads", count=1), ApprovalStage(group="sre", count=4)),
            MEMBERS,
            ["stage 2 needs 4 approvals but group sre has only 3 members"],
            id="count larger than group",
        ),
        pytest.param(
            (ApprovalStage(group="leads", count=3),),
            MEMBERS,
            [
                "stage 1 needs all 3 members of group leads: a deployment requested by a member of leads "
                "can never be approved (the requester never counts)"
            ],
            id="count equal to group size",
        ),
        pytest.param(
            (ApprovalStage(group="solo", count=1),),
            MEMBERS,
            [
                "stage 1 needs all 1 member of group solo: a deployment requested by a member of solo "
                "can never be approved (the requester never counts)"
            ],
            id="one-person group",
        ),
        pytest.param(
            (ApprovalStage(group="ab", count=1), ApprovalStage(group="ab2", count=1)),
            {"ab": frozenset({"a", "b"}), "ab2": frozenset({"a", "b"})},
            [
                "a deployment requested by a, b can never be approved: without the requester the groups "
                "cannot fill every stage (one person counts for one stage only)"
            ],
            id="requester leaves too few across stages",
        ),
        pytest.param(
            (ApprovalStage(group="abc", count=2), ApprovalStage(group="abc2", count=2)),
            {"abc": frozenset({"a", "b", "c"}), "abc2": frozenset({"a", "b", "c"})},
            [
                "the stages need 4 distinct approvers but their groups cannot provide them "
                "(one person counts for one stage only)"
            ],
            id="not enough distinct people across stages",
        ),
        pytest.param(
            (ApprovalStage(group="abx", count=2), ApprovalStage(group="aby", count=2)),
            {"abx": frozenset({"a", "b", "x"}), "aby": frozenset({"a", "b", "y"})},
            [
                "a deployment requested by a, b, x, y can never be approved: without the requester the "
                "groups cannot fill every stage (one person counts for one stage only)"
            ],
            id="exactly enough people: nobody of them may request",
        ),
        pytest.param(
            (ApprovalStage(group="ab", count=1), ApprovalStage(group="bc", count=1)),
            {"ab": frozenset({"a", "b"}), "bc": frozenset({"b", "c"})},
            [],
            id="overlap is fine when a matching exists for every requester",
        ),
    ],
)
def test_validate_stages(
    stages: tuple[ApprovalStage, ...], members: dict[str, frozenset[str]], problems: list[str]
) -> None:
    assert validate_stages(stages, members) == problems


def test_break_glass_membership() -> None:
    assert may_break_glass("olga", frozenset({"olga"}))
    assert not may_break_glass("mallory", frozenset({"olga"}))
    assert not may_break_glass("olga", ())


@pytest.mark.parametrize(
    ("user", "reason", "allowed", "refusal"),
    [
        pytest.param("olga", "  payments down, hotfix  ", True, None, id="allowed"),
        pytest.param(
            "olga",
            "   ",
            False,
            "an emergency deployment needs a reason: say why approvals and freezes are skipped",
            id="blank reason",
        ),
        pytest.param(
            "olga",
            None,
            False,
            "an emergency deployment needs a reason: say why approvals and freezes are skipped",
            id="no reason",
        ),
        pytest.param(
            "mallory",
            "please",
            False,
            "you are not in the break-glass group: emergency deployments are refused",
            id="not a member",
        ),
    ],
)
def test_emergency_decision(user: str, reason: str | None, allowed: bool, refusal: str | None) -> None:
    decision = decide_emergency(user, reason, frozenset({"olga"}))
    assert decision.allowed is allowed
    assert decision.refusal == refusal
    assert decision.skips_approvals is allowed
    assert decision.skips_freezes is allowed
    if allowed:
        assert decision.reason == "payments down, hotfix"


@pytest.mark.parametrize(
    ("elapsed", "expired"),
    [
        (timedelta(0), False),
        (timedelta(minutes=59, seconds=59), False),
        (timedelta(hours=1), True),
        (timedelta(hours=5), True),
        (timedelta(seconds=-10), False),
    ],
)
def test_expiry(elapsed: timedelta, expired: bool) -> None:
    ttl = timedelta(hours=1)
    assert approval_deadline(T0, ttl) == T0 + ttl
    assert is_expired(T0, ttl, T0 + elapsed) is expired
