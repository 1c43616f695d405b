"""Environment locks people set and lift: ``/deploy lock``, ``/deploy unlock`` and Unlock buttons.

Who may lift which lock is ``approvals.may_unlock``; here are the lookups it needs (the approval
groups of every playbook the lock covers, the people behind a guard lock's deployment) and the
lifting itself, which also stops the post-rollback watch behind a guard lock.
"""

from __future__ import annotations

from bot.domain import approvals
from bot.domain import watch_transitions as watch_rules
from bot.domain.events import RollbackRequested, event_from_payload
from bot.domain.locks import Lock, LockKind
from bot.domain.message import Mention, Message
from bot.domain.notifications import EnvLocked, EnvUnlocked
from bot.engine.handling import Handler, Outcome


class Locking(Handler):
    """Locks and unlocks (mixed into ``bot.engine.orchestrator.Orchestrator``)."""

    async def lock(
        self, env: str, service: str | None, reason: str, user: str, channel: str | None = None
    ) -> Outcome:
        target = f"{env}/{service}" if service else env
        now = self.ctx.clock.now()
        existing = [
            lk
            for lk in await self.ctx.store.active_locks(env)
            if lk.kind is LockKind.MANUAL and lk.service == service
        ]
        if existing:
            return await self._refuse(
                user,
                channel,
                "lock",
                target,
                Message.of(
                    f"{target} is already locked by ", Mention(existing[0].author), ": ", existing[0].reason
                ),
            )
        lock = await self.ctx.store.add_lock(Lock(None, env, service, LockKind.MANUAL, reason, user, now))
        await self._audit(user, "lock", channel, target, "accepted", reason=reason, lock_id=lock.id)
        await self.ctx.tell(
            EnvLocked(env, service, LockKind.MANUAL.value, reason, user, channel, lock_id=lock.id)
        )
        return Outcome(True, Message.of(f"locked {target}: ", reason))

    async def unlock(self, env: str, service: str | None, user: str, channel: str | None = None) -> Outcome:
        """Lift the manual and guard locks on ``env`` (or on one service there); freezes are config.

        All or nothing: refused, lifting none, unless ``user`` may lift every one of them.
        """
        target = f"{env}/{service}" if service else env
        lifted = [
            lk
            for lk in await self.ctx.store.active_locks(env)
            if lk.kind is not LockKind.FREEZE and lk.service == service
        ]
        if not lifted:
            return await self._refuse(user, channel, "unlock", target, f"{target} has no lock to lift")
        for lock in lifted:
            if not await self.may_unlock(user, lock):
                return await self._refuse(user, channel, "unlock", target, _unlock_refusal(lock))
        for lock in lifted:
            await self._lift(lock, user, channel)
        await self._audit(user, "unlock", channel, target, "accepted", locks=[lk.id for lk in lifted])
        return Outcome(True, Message.of(f"unlocked {target}"))

    async def unlock_lock(self, lock_id: int, user: str, channel: str | None = None) -> Outcome:
        """Lift one lock, by id (an Unlock button in a thread or on App Home): only that one."""
        lock = await self.ctx.store.get_lock(lock_id)
        if lock is None or lock.released_at is not None:
            return await self._refuse(user, channel, "unlock", str(lock_id), "that lock was already lifted")
        target = f"{lock.env}/{lock.service}" if lock.service else lock.env
        if not await self.may_unlock(user, lock):
            return await self._refuse(user, channel, "unlock", target, _unlock_refusal(lock))
        await self._lift(lock, user, channel)
        await self._audit(user, "unlock", channel, target, "accepted", locks=[lock.id])
        return Outcome(True, Message.of(f"unlocked {target} ({lock.kind} lock)"))

    async def may_unlock(self, user: str, lock: Lock) -> bool:
        """``approvals.may_unlock`` for ``lock``, with the groups and people it needs looked up.

        The approval stages are those of the lock's environment in every playbook it covers (one
        service, or all of them for an environment-wide lock).
        """
        stages = [
            stage
            for book in self.ctx.playbooks.values()
            if lock.service in (None, book.service)
            for name, settings in book.environments.items()
            if name == lock.env
            for stage in settings.approvals
        ]
        members = await self._members(s.group for s in stages)
        involved = await self._involved(lock) if lock.kind is LockKind.GUARD else frozenset()
        return approvals.may_unlock(user, lock, stages, members, await self._break_glass_members(), involved)

    async def _involved(self, lock: Lock) -> frozenset[str]:
        """The people behind a guard lock's deployment: its requester and who asked for its rollback."""
        if lock.deployment_id is None:
            return frozenset()
        dep = await self.ctx.store.get_deployment(lock.deployment_id)
        if dep is None:
            return frozenset()
        people = {dep.requester}
        for stored in await self.ctx.store.events_for(dep.id):
            if stored.type == RollbackRequested.__name__:
                event = event_from_payload(stored.type, stored.payload)
                if isinstance(event, RollbackRequested) and event.user:
                    people.add(event.user)
        return frozenset(people)

    async def _lift(self, lock: Lock, user: str, channel: str | None) -> None:
        assert lock.id is not None
        await self.ctx.store.release_lock(lock.id, user, self.ctx.clock.now())
        if lock.kind is LockKind.GUARD:
            for watch in await self.ctx.store.active_watches():
                if watch.lock_id == lock.id:
                    stopped = watch_rules.apply(watch, watch_rules.LiftedByPerson(user), self.ctx.clock.now())
                    await self.ctx.store.save_watch(stopped.watch)
        # No reason: a person lifted it, and ``by`` says who (the renderer words it).
        unlocked = EnvUnlocked(
            lock.env, lock.service, lock.kind.value, None, user, channel, lock.deployment_id, lock.id
        )
        await self.ctx.tell(unlocked)


def _unlock_refusal(lock: Lock) -> str:
    """Who may lift ``lock`` (``approvals.may_unlock`` in words), for the person who may not."""
    if lock.kind is LockKind.GUARD:
        return (
            f"only an approver of {lock.env}, the people behind the rolled-back deployment or break-glass "
            "may lift this guard lock"
        )
    return f"only the lock's author, an approver of {lock.env} or break-glass may lift this {lock.kind} lock"
