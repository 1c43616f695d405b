"""What people decide on a running deployment: approve or reject, cancel, promote.

Each command checks who may do it and whether the deployment is still where the person saw it
(a vote for the stage being collected, a promote for the step it is at), then hands the state
machine one event; a refusal is said, audited, and changes nothing.
"""

from __future__ import annotations

from bot.domain import approvals, breach
from bot.domain.deployment import Deployment
from bot.domain.events import ApprovalRecorded, ApprovalsComplete, Cancelled, Event, Rejected
from bot.domain.message import Code, Mention, Message
from bot.domain.notifications import ApprovalGiven
from bot.domain.phases import Phase
from bot.domain.transitions import CANCELLABLE, ROLLBACKABLE
from bot.engine.handling import Handler, Outcome


class Judgments(Handler):
    """Votes, cancel and promote (mixed into ``bot.engine.orchestrator.Orchestrator``)."""

    async def vote(
        self,
        deployment_id: str,
        user: str,
        approve: bool,
        reason: str | None = None,
        channel: str | None = None,
        stage: int | None = None,
    ) -> Outcome:
        """An Approve or Reject click (Reject needs a reason).

        ``stage`` (0-based) is the approval stage the button was drawn for: refused at any other,
        so an old stage-1 button never votes in stage 2.
        """
        action = "approve" if approve else "reject"
        if not approve and not (reason and reason.strip()):
            return await self._refuse(user, channel, action, deployment_id, "a rejection needs a reason")
        async with self.lock_for(f"votes:{deployment_id}"):
            dep = await self.ctx.store.get_deployment(deployment_id)
            if dep is None:
                return await self._refuse(
                    user, channel, action, deployment_id, f"no deployment {deployment_id}"
                )
            if dep.phase is not Phase.AWAITING_APPROVAL:
                return await self._refuse(
                    user,
                    channel,
                    action,
                    dep.id,
                    f"{dep.id} is not waiting for approvals (it is {dep.phase})",
                )
            stages = self.ctx.environment(dep).approvals
            members = await self._members(s.group for s in stages)
            votes = await self.ctx.store.votes_for(dep.id)
            check = approvals.check_vote(
                stages,
                members,
                dep.requester,
                votes,
                user,
                dep.approval_stage if stage is None else stage,
                approve=approve,
            )
            if not check.allowed:
                return await self._refuse(user, channel, action, dep.id, check.reason or "not allowed")
            vote = approvals.Vote(dep.id, dep.approval_stage, user, approve, self.ctx.clock.now(), reason)
            if not await self.ctx.store.add_vote(vote):
                await self.settle_votes(dep.id)
                return Outcome(True, Message.of("your vote was already recorded"), dep)
        await self._audit(user, action, channel, dep.id, "accepted", stage=dep.approval_stage, reason=reason)
        await self.ctx.tell(ApprovalGiven(dep, user, dep.approval_stage, approve, reason))
        new = await self.settle_votes(dep.id)
        return Outcome(True, Message.of("approved " if approve else "rejected ", Code(dep.id)), new or dep)

    async def settle_votes(self, deployment_id: str) -> Deployment | None:
        """Bring an awaiting deployment up to date with its stored votes.

        The vote is stored before its event; if the process dies in between, the next poll (or a
        repeated click) finishes the job from the votes alone, so no approval is ever lost.
        """
        async with self.lock_for(f"settle:{deployment_id}"):
            dep = await self.ctx.store.get_deployment(deployment_id)
            while dep is not None and dep.phase is Phase.AWAITING_APPROVAL:
                stages = self.ctx.environment(dep).approvals
                members = await self._members(s.group for s in stages)
                votes = await self.ctx.store.votes_for(dep.id)
                progress = approvals.progress(stages, members, dep.requester, votes)
                last = votes[-1].user if votes else dep.requester
                event: Event
                if progress.rejected_by is not None:
                    event = Rejected(user=progress.rejected_by.user, reason=progress.rejected_by.reason or "")
                elif progress.done:
                    event = ApprovalsComplete(user=last)
                elif progress.stage > dep.approval_stage:
                    event = ApprovalRecorded(user=last, stage=dep.approval_stage, stage_complete=True)
                else:
                    return dep
                new = await self.try_handle(dep.id, event)
                if new is None:
                    return await self.ctx.store.get_deployment(deployment_id)
                dep = new
            return dep

    async def cancel(
        self, deployment_id: str, user: str, reason: str | None = None, channel: str | None = None
    ) -> Outcome:
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None:
            return await self._refuse(
                user, channel, "cancel", deployment_id, f"no deployment {deployment_id}"
            )
        if user != dep.requester and user not in await self._break_glass_members():
            return await self._refuse(
                user,
                channel,
                "cancel",
                dep.id,
                Message.of("only the requester (", Mention(dep.requester), ") or break-glass may cancel"),
            )
        if dep.phase not in CANCELLABLE:
            hint = " — use /rollback to undo it" if dep.phase in ROLLBACKABLE else ""
            return await self._refuse(user, channel, "cancel", dep.id, f"{dep.id} is {dep.phase}{hint}")
        new = await self.try_handle(dep.id, Cancelled(user=user, reason=reason))
        if new is None:
            return await self._refuse(user, channel, "cancel", dep.id, f"{dep.id} can no longer be cancelled")
        await self._audit(user, "cancel", channel, dep.id, "accepted", reason=reason)
        return Outcome(True, Message.of("cancelled ", Code(dep.id)), new)

    async def promote(
        self, deployment_id: str, user: str, channel: str | None = None, step: int | None = None
    ) -> Outcome:
        """A person's judgment on a held deployment: go on (next step, or finish).

        ``step`` is the step the person looked at (a Promote button carries it): refused once the
        deployment is at another one, so two people clicking one Promote promote it once, and
        nobody promotes a step they have not seen. Concurrent promotes of one deployment queue.
        """
        async with self.lock_for(f"promote:{deployment_id}"):
            return await self._promote(deployment_id, user, channel, step)

    async def _promote(self, deployment_id: str, user: str, channel: str | None, step: int | None) -> Outcome:
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None:
            return await self._refuse(
                user, channel, "promote", deployment_id, f"no deployment {deployment_id}"
            )
        if dep.phase is not Phase.VERIFYING:
            return await self._refuse(
                user, channel, "promote", dep.id, f"{dep.id} is {dep.phase}, not verifying"
            )
        stages = self.ctx.environment(dep).approvals
        allowed = await self._members(s.group for s in stages)
        deciders = set().union(*allowed.values()) if allowed else set()
        deciders |= await self._break_glass_members()
        if stages and (user not in deciders or user == dep.requester):
            return await self._refuse(
                user,
                channel,
                "promote",
                dep.id,
                "only an approver of this environment (not the requester) may promote",
            )
        if step is not None and step != dep.step:
            return await self._refuse(
                user,
                channel,
                "promote",
                dep.id,
                f"{dep.id} has moved on from the step that button was for: judge the step it is at now",
            )
        event = breach.next_step_event(dep, len(self.ctx.canary_steps(dep)), user)
        new = await self.try_handle(dep.id, event)
        if new is None:
            return await self._refuse(user, channel, "promote", dep.id, f"{dep.id} cannot be promoted now")
        await self._audit(user, "promote", channel, dep.id, "accepted")
        return Outcome(True, Message.of("promoted ", Code(dep.id)), new)
