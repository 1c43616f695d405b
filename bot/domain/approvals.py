"""Approval policy: who may approve a deployment, in which order, and when it is enough.

Four-eyes: the requester never counts, however many groups they belong to. Stages are collected in
order; a break-glass group may skip approvals with ``--emergency`` (audited loudly elsewhere).

Everything here is a pure function of the environment's stages, the already resolved group
membership, the requester and the votes stored so far, so the Slack layer (may this click count?),
the orchestrator (is it enough now?) and the scheduler (has it expired?) all ask the same rules.

Choices worth knowing:

- A vote counts for the stage that was current when it was cast (``Vote.stage``); votes replayed
  for any other stage are ignored (a late click on a stage already satisfied does not spill over).
- **One person counts once per deployment.** Someone in both ``leads`` and ``sre`` cannot satisfy
  both stages: a second stage exists to bring in a second pair of eyes, and letting one person
  fill two stages would quietly turn a two-stage policy into a one-person one.
- Anyone who may approve the current stage may also reject it, even after approving it (saying no
  late is always allowed); a rejection ends the collection.
- People see stages numbered from 1; ``Vote.stage`` and ``Deployment.approval_stage`` are 0-based.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.locks import Lock, LockKind
from bot.domain.playbook import ApprovalStage


@dataclass(frozen=True, slots=True)
class Vote:
    """One person's approve or reject on one deployment, at one stage."""

    deployment_id: str
    stage: int
    user: str
    approve: bool
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalProgress:
    """How far a deployment's approvals have come."""

    stage: int
    """0-based index of the stage being collected (``len(stages)`` once done)."""
    approvers: tuple[tuple[str, ...], ...]
    """Per stage, the users whose approval counted, in the order they approved."""
    done: bool
    """Every stage has its count: the deployment may proceed."""
    rejected_by: Vote | None
    """The rejection that ended the collection, if any."""
    needed: int
    """How many more approvals the current stage needs (0 when done or rejected)."""

    @property
    def rejected(self) -> bool:
        """True when an eligible approver said no."""
        return self.rejected_by is not None

    @property
    def waiting(self) -> bool:
        """True while more approvals are needed and nobody rejected."""
        return not self.done and self.rejected_by is None

    @property
    def approved_by(self) -> frozenset[str]:
        """Everyone whose approval counted, over all stages."""
        return frozenset(user for stage in self.approvers for user in stage)


def _group(members: Mapping[str, frozenset[str]], stage: ApprovalStage) -> frozenset[str]:
    """The stage's group; an undefined group has nobody in it (``validate_stages`` reports it)."""
    return members.get(stage.group, frozenset())


def progress(
    stages: Sequence[ApprovalStage],
    members: Mapping[str, frozenset[str]],
    requester: str,
    votes: Iterable[Vote],
) -> ApprovalProgress:
    """Replay ``votes`` (in time order) against ``stages`` and say where the deployment stands.

    ``votes`` are those of one deployment. A vote counts when it was cast for the stage current at
    that point, by a member of that stage's group who is not the requester and whose approval has
    not already counted (for this or an earlier stage).
    """
    approvers: list[list[str]] = [[] for _ in stages]
    counted: set[str] = set()
    current = 0
    rejected_by: Vote | None = None
    # sorted() is stable: votes with the same timestamp keep the store's order.
    for vote in sorted(votes, key=lambda v: v.at):
        if current >= len(stages):
            break
        stage = stages[current]
        if vote.stage != current or vote.user == requester or vote.user not in _group(members, stage):
            continue
        if not vote.approve:
            rejected_by = vote
            break
        if vote.user in counted:
            continue
        counted.add(vote.user)
        approvers[current].append(vote.user)
        if len(approvers[current]) >= stage.count:
            current += 1
    done = rejected_by is None and current >= len(stages)
    needed = 0
    if rejected_by is None and not done:
        needed = stages[current].count - len(approvers[current])
    return ApprovalProgress(
        stage=current,
        approvers=tuple(tuple(users) for users in approvers),
        done=done,
        rejected_by=rejected_by,
        needed=needed,
    )


@dataclass(frozen=True, slots=True)
class VoteCheck:
    """Whether a click may be recorded, and if not, what to tell the person."""

    allowed: bool
    reason: str | None = None
    """Why the vote was refused, addressed to the voter (None when allowed)."""


_ALLOWED = VoteCheck(allowed=True)


def check_vote(
    stages: Sequence[ApprovalStage],
    members: Mapping[str, frozenset[str]],
    requester: str,
    votes: Iterable[Vote],
    user: str,
    stage: int,
    *,
    approve: bool = True,
) -> VoteCheck:
    """May ``user`` approve (or, with ``approve=False``, reject) at 0-based ``stage`` now?

    Refusals are worded for the voter, e.g. "you are not in group sre".
    """
    state = progress(stages, members, requester, votes)
    if state.rejected_by is not None:
        return VoteCheck(False, "this deployment was already rejected")
    if state.done:
        return VoteCheck(False, "this deployment is not waiting for approvals any more (all stages approved)")
    if stage != state.stage:
        return VoteCheck(
            False,
            f"this deployment is not waiting for approvals at stage {stage + 1} "
            f"(it is at stage {state.stage + 1} of {len(stages)})",
        )
    if user == requester:
        if approve:
            return VoteCheck(False, "you requested this deployment: someone else must approve (four-eyes)")
        return VoteCheck(False, "you requested this deployment: cancel it rather than reject it")
    group = stages[stage].group
    if user not in _group(members, stages[stage]):
        return VoteCheck(False, f"you are not in group {group}")
    if approve:
        if user in state.approvers[stage]:
            return VoteCheck(False, "you already approved")
        for earlier, users in enumerate(state.approvers[:stage]):
            if user in users:
                return VoteCheck(
                    False,
                    f"you already approved at stage {earlier + 1}: "
                    "one person counts for one stage only, someone else must approve this one",
                )
    return _ALLOWED


def _assignable(stages: Sequence[ApprovalStage], members: Mapping[str, frozenset[str]], exclude: str) -> bool:
    """Can every stage get ``count`` distinct people, nobody used twice, ``exclude`` left out?

    A bipartite matching (approval slots to people) by augmenting paths; approval policies are a
    handful of slots, so the simple algorithm is plenty.
    """
    slots = [_group(members, stage) - {exclude} for stage in stages for _ in range(stage.count)]
    owner: dict[str, int] = {}

    def augment(slot: int, seen: set[str]) -> bool:
        for user in sorted(slots[slot]):
            if user in seen:
                continue
            seen.add(user)
            if user not in owner or augment(owner[user], seen):
                owner[user] = slot
                return True
        return False

    return all(augment(slot, set()) for slot in range(len(slots)))


def validate_stages(stages: Sequence[ApprovalStage], members: Mapping[str, frozenset[str]]) -> list[str]:
    """Problems with an environment's stages given the groups' members; empty when all is well.

    Each message describes a case where some deployment could never be approved.
    """
    problems: list[str] = []
    for number, stage in enumerate(stages, start=1):
        if stage.group not in members:
            problems.append(f"stage {number}: group {stage.group} is not defined")
            continue
        size = len(members[stage.group])
        if size == 0:
            problems.append(f"stage {number}: group {stage.group} has no members")
        elif stage.count > size:
            problems.append(
                f"stage {number} needs {stage.count} approvals but group {stage.group} "
                f"has only {size} member{'s' if size != 1 else ''}"
            )
        elif stage.count == size:
            problems.append(
                f"stage {number} needs all {size} member{'s' if size != 1 else ''} of group {stage.group}: "
                f"a deployment requested by a member of {stage.group} can never be approved "
                "(the requester never counts)"
            )
    if problems:
        return problems
    # Each stage is possible on its own; together they may still need more distinct people than
    # the groups hold, because one person counts for one stage only.
    if not _assignable(stages, members, exclude=""):
        total = sum(stage.count for stage in stages)
        problems.append(
            f"the stages need {total} distinct approvers but their groups cannot provide them "
            "(one person counts for one stage only)"
        )
        return problems
    everyone = sorted({user for stage in stages for user in _group(members, stage)})
    stuck = [user for user in everyone if not _assignable(stages, members, exclude=user)]
    if stuck:
        problems.append(
            "a deployment requested by "
            + ", ".join(stuck)
            + " can never be approved: without the requester the groups cannot fill every stage "
            "(one person counts for one stage only)"
        )
    return problems


def may_break_glass(user: str, break_glass_members: Collection[str]) -> bool:
    """True when ``user`` belongs to the break-glass group."""
    return user in break_glass_members


def approvers(stages: Sequence[ApprovalStage], members: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """Everyone who may approve some stage of these environments' stages."""
    return frozenset(user for stage in stages for user in _group(members, stage))


def may_roll_back(
    user: str,
    requester: str | None,
    stages: Sequence[ApprovalStage],
    members: Mapping[str, frozenset[str]],
    break_glass_members: Collection[str],
) -> bool:
    """May ``user`` roll back (or abort) in an environment with these approval ``stages``?

    ``requester`` asked for what is being undone (the live deployment, or the release a rollback
    of the last release puts back), None when there is none. Its requester, an approver of the
    environment or break-glass may: undoing is as serious as letting a version in. Where the
    environment needs no approvals, anyone who may deploy there may roll back.
    """
    if not stages:
        return True
    return user == requester or user in approvers(stages, members) or user in break_glass_members


def may_unlock(
    user: str,
    lock: Lock,
    stages: Sequence[ApprovalStage],
    members: Mapping[str, frozenset[str]],
    break_glass_members: Collection[str],
    involved: Collection[str] = (),
) -> bool:
    """May ``user`` lift ``lock``? ``stages`` are every approval stage of the environment the lock
    covers (of each service it covers); ``involved`` are the people behind a guard lock's deployment
    (its requester and whoever asked for its rollback).

    - Break-glass always may; nobody lifts a freeze window (it is config).
    - A manual lock: its author, or an approver of the environment — the same people who may let a
      deployment in may reopen it. Where nobody approves deployments, anyone who may deploy may.
    - A guard lock (set by the bot after a rollback, author ``shipthread``) protects a restored
      version that just went wrong: an approver of the environment; where there are no approvers,
      only the people involved in that deployment. Never simply anyone.
    """
    if lock.kind is LockKind.FREEZE:
        return False
    if user in break_glass_members:
        return True
    allowed = approvers(stages, members)
    if lock.kind is LockKind.MANUAL:
        return user == lock.author or user in allowed or not stages
    return user in allowed if stages else user in involved


@dataclass(frozen=True, slots=True)
class EmergencyDecision:
    """The answer to an ``--emergency`` request.

    When allowed, the deployment skips approvals AND freeze windows (manual and guard locks still
    hold: someone set those on purpose, and unlocking is one command). The reason is mandatory:
    it is stored on the deployment and posted loudly.
    """

    allowed: bool
    user: str
    reason: str
    """The stated reason, trimmed (empty when refused for lack of one)."""
    refusal: str | None = None
    """Why it was refused, addressed to the requester."""

    @property
    def skips_approvals(self) -> bool:
        """An allowed emergency needs no approvals."""
        return self.allowed

    @property
    def skips_freezes(self) -> bool:
        """An allowed emergency ignores freeze windows."""
        return self.allowed


def decide_emergency(
    user: str, reason: str | None, break_glass_members: Collection[str]
) -> EmergencyDecision:
    """May ``user`` break glass with ``reason``? Refused without membership or without a reason."""
    text = (reason or "").strip()
    if not may_break_glass(user, break_glass_members):
        return EmergencyDecision(
            False, user, text, "you are not in the break-glass group: emergency deployments are refused"
        )
    if not text:
        return EmergencyDecision(
            False,
            user,
            text,
            "an emergency deployment needs a reason: say why approvals and freezes are skipped",
        )
    return EmergencyDecision(True, user, text)


def approval_deadline(requested_at: datetime, ttl: timedelta) -> datetime:
    """When approvals requested at ``requested_at`` expire."""
    return requested_at + ttl


def is_expired(requested_at: datetime, ttl: timedelta, now: datetime) -> bool:
    """True from the deadline on (at the deadline exactly, it has expired)."""
    return now >= approval_deadline(requested_at, ttl)
