"""The one way a deployment changes, and what every command shares: ``Handler``.

``handle`` loads the deployment, asks the pure state machine what the event means, stores the new
deployment, the event and the effects to perform in one transaction, then performs the effects.
Effects are kept in the store's outbox until done, so a crash between storing and acting loses
nothing (``run_effects`` at start-up finishes them) and, because every effect is keyed and every
adapter finds its own earlier work by that key, nothing runs twice. What an effect learns comes
back from ``perform`` as an event, handled here like every other one: the effects never call back.

The commands people type are mixins over this base (``bot.engine.admit``, ``judgments``,
``rollbacks``, ``locking``), composed in ``bot.engine.orchestrator``; the steps they share besides
(refuse with a message, audit, look up groups, store a new deployment) are ``bot.engine.commands_base``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from bot.domain import admission
from bot.domain.audit import BOT
from bot.domain.deployment import Deployment
from bot.domain.effects import Effect, effect_from_payload, effect_to_payload
from bot.domain.events import Event, event_to_payload, event_type_name
from bot.domain.phases import Phase
from bot.domain.transitions import apply
from bot.engine import due_times
from bot.engine.commands_base import CommandSteps, IdSource, Outcome, request_target
from bot.engine.context import Context
from bot.engine.turns import in_turns
from bot.errors import (
    InvalidTransition,
    StaleDeployment,
    TransientError,
    UnknownDeployment,
)
from bot.ports import PendingEffect, Transition

__all__ = ["BOT", "Handler", "IdSource", "Outcome", "Perform", "Timer", "TransitionHook", "request_target"]

log = logging.getLogger("shipthread.engine")


class Timer:
    """What the orchestrator asks of the scheduler; the default does nothing (tests drive ticks)."""

    def wake(self, at: datetime | None) -> None:
        """Something is due at ``at`` (stored with it): look no later than then. None: nothing is."""


TransitionHook = Callable[[str, Deployment, Event], None]
"""Called with ``"before"`` just before a transition is stored and ``"after"`` right after it,
before its effects run. The crash tests hook in here to kill the process at every transition."""


Perform = Callable[[Deployment, Effect], Awaitable[Event | None]]
"""Performs one effect and returns the event it produced, if any (``bot.engine.effects.Effects.perform``)."""


class Handler(CommandSteps):
    def __init__(
        self,
        ctx: Context,
        *,
        perform: Perform,
        timer: Timer | None = None,
        on_transition: TransitionHook | None = None,
        new_id: IdSource | None = None,
    ) -> None:
        self.ctx = ctx
        self._perform = perform
        self._id_source = new_id
        self.timer = timer or Timer()
        self._on_transition = on_transition
        # Weak: a lock lives while someone holds or waits for it, so finished deployments cost nothing.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._running: set[str] = set()

    # -- the one way a deployment changes -----------------------------------------------------------

    def lock_for(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def handle(
        self,
        deployment_id: str,
        event: Event,
        completes: Sequence[str] = (),
        current: Deployment | None = None,
    ) -> Deployment:
        """Apply ``event`` to the stored deployment, store the result with its effects, run them.

        ``completes`` are the keys of the effects whose result ``event`` is (and of effects done
        before it without one): marked done in the same transaction, so a restart never performs
        them again after the result was stored. ``current``: the deployment as its caller just read
        or stored it, decided on without reading it again; if the row moved on meanwhile (the
        UPDATE finds another version, or the event is refused), it is read and decided again.
        Raises ``InvalidTransition`` (nothing changed) when the deployment's phase refuses it.
        """
        async with self.lock_for(deployment_id):
            try:
                dep, new, due_at, owed = await self._store_event(
                    current or await self._load(deployment_id), event, completes
                )
            except (StaleDeployment, InvalidTransition):
                if current is None:
                    raise
                fresh = await self._load(deployment_id)
                if fresh.version_no == current.version_no:  # what it decided on was current
                    raise
                dep, new, due_at, owed = await self._store_event(fresh, event, completes)
        self.timer.wake(due_at)
        await self.run_effects(new.id, current=_as_stored(new, dep.version_no), pending=owed)
        if new.phase.terminal:
            await self.start_next(new.service, new.env)
        return new

    async def _store_event(
        self, dep: Deployment, event: Event, completes: Sequence[str]
    ) -> tuple[Deployment, Deployment, datetime | None, Sequence[PendingEffect] | None]:
        """``handle``'s transition of ``dep`` (held under its lock): the old, the new, its due time,
        and what its outbox owes now if the store knew it without reading (``save_transition``)."""
        ctx = self.ctx
        now = ctx.clock.now()
        decision = apply(dep, event, now)
        pending = [_pending(effect, now) for effect in decision.effects]
        due_at = await due_times.deployment_due(ctx, decision.deployment, now, fresh=True, event=event)
        if self._on_transition is not None:
            self._on_transition("before", decision.deployment, event)
        owed = await ctx.store.save_transition_owed(
            Transition(
                decision.deployment,
                dep.version_no,
                event_type_name(event),
                event_to_payload(event),
                now,
                pending,
                due_at,
            ),
            completes,
        )
        new = decision.deployment
        log.info("%s %s: %s -> %s", new.id, event_type_name(event), dep.phase, new.phase)
        if self._on_transition is not None:
            self._on_transition("after", new, event)
        return dep, new, due_at, owed

    async def handle_all(self, events: Sequence[tuple[str, Event]]) -> list[Deployment | None]:
        """``try_handle`` for one event each of many deployments, all stored in one transaction.

        What a guard tick's outcomes are stored as: one transaction (and a fixed number of
        statements) however many deployments ticked. A refused event is skipped (None, as in
        ``try_handle``); if the batch cannot be stored as one (a deployment changed meanwhile),
        each event is handled on its own. The transition hooks see every transition, as in ``handle``.
        """
        ids = [deployment_id for deployment_id, _ in events]
        assert len(set(ids)) == len(ids), "one event per deployment"
        ctx = self.ctx
        results: dict[str, tuple[Deployment, Transition]] = {}
        async with contextlib.AsyncExitStack() as locks:
            async for deployment_id in in_turns(sorted(ids)):  # one order for every caller: no two wait
                await locks.enter_async_context(self.lock_for(deployment_id))
            loaded = {dep.id: dep for dep in await ctx.store.get_deployments(ids)}
            now = ctx.clock.now()
            async for deployment_id, event in in_turns(events):  # 1,000 of them: no one long callback
                dep = loaded.get(deployment_id)
                try:
                    decision = apply(dep, event, now) if dep is not None else None
                except InvalidTransition as exc:
                    log.info("ignored stale event: %s", exc)
                    continue
                if dep is None or decision is None:
                    continue
                new = decision.deployment
                due_at = await due_times.deployment_due(ctx, new, now, fresh=True, event=event)
                pending = [_pending(effect, now) for effect in decision.effects]
                name, payload = event_type_name(event), event_to_payload(event)
                transition = Transition(new, dep.version_no, name, payload, now, pending, due_at)
                if self._on_transition is not None:
                    self._on_transition("before", decision.deployment, event)
                results[deployment_id] = (dep, transition)
            try:
                await ctx.store.save_transitions([t for _, t in results.values()])
            except TransientError as exc:
                log.info("a batch of %d transitions is stored one by one: %s", len(results), exc)
                results.clear()
        if not results and events:
            return [await self.try_handle(deployment_id, event) for deployment_id, event in events]
        async for deployment_id, event in in_turns(events):
            if deployment_id in results:
                await self._handled(*results[deployment_id], event)
        return [results[i][1].deployment if i in results else None for i in ids]

    async def _handled(self, old: Deployment, transition: Transition, event: Event) -> None:
        """What follows a stored transition of ``handle_all``: hooks, the timer, effects, the queue."""
        new = transition.deployment
        log.info("%s %s: %s -> %s", new.id, transition.event_type, old.phase, new.phase)
        if self._on_transition is not None:
            self._on_transition("after", new, event)
        self.timer.wake(transition.due_at)
        if transition.effects:
            await self.run_effects(new.id, current=_as_stored(new, old.version_no))
        if new.phase.terminal:
            await self.start_next(new.service, new.env)

    async def try_handle(
        self,
        deployment_id: str,
        event: Event,
        completes: Sequence[str] = (),
        current: Deployment | None = None,
    ) -> Deployment | None:
        """``handle``, treating a refused (stale) event as nothing to do: ticks and late callbacks."""
        try:
            return await self.handle(deployment_id, event, completes, current)
        except InvalidTransition as exc:
            log.info("ignored stale event: %s", exc)
            return None

    async def run_effects(
        self,
        deployment_id: str | None = None,
        current: Deployment | None = None,
        pending: Sequence[PendingEffect] | None = None,
    ) -> Sequence[PendingEffect]:
        """Perform the outbox's pending effects (of one deployment, or all), oldest first, once each.

        ``current``: the deployment as its caller just stored or read it, so the effects are
        performed on it without reading it again (an effect without a result leaves the row as it
        was; one whose result was handled may have moved it on, so the next effect reads it).

        Effects without a result are marked done together: with the next effect's result, or in
        one statement once the run ends or an effect fails (a crash before that performs them
        again, which their keys make harmless); until then they stay in ``_running``, so no other
        run performs them meanwhile.

        Returns the effects that were pending (empty: there was nothing to do, so a caller that read
        the deployment before needs not read it again). ``pending``: what the outbox owes, when
        the caller knows it (the transition just stored said so), so it is not read again."""
        if pending is None:
            pending = await self.ctx.store.pending_effects(deployment_id)
        known = {current.id: current} if current is not None else {}
        unmarked: list[str] = []
        try:
            for item in pending:
                if item.key not in self._running:
                    self._running.add(item.key)
                    await self._run_effect(item, known, unmarked)
        finally:
            await self._mark_done(unmarked)
        return pending

    async def _run_effect(
        self, item: PendingEffect, known: dict[str, Deployment], unmarked: list[str]
    ) -> None:
        """Perform one pending effect (its key already in ``_running``) and handle what it learnt."""
        done = False
        try:
            dep = known.pop(item.deployment_id, None) or await self._load(item.deployment_id)
            effect = effect_from_payload(item.effect_type, item.payload)
            result = await self._perform(dep, effect)
            if result is None:
                known[dep.id] = dep  # performing it changed nothing stored of the deployment
                unmarked.append(item.key)
                done = True
                return
            # What the effect learnt is stored with it (and those before it) marked done, in one
            # transaction; an effect whose result came too late is marked with the rest.
            completes = (*unmarked, item.key)
            if await self.try_handle(dep.id, result, completes, current=dep) is None:
                unmarked.append(item.key)
                done = True
            else:
                self._running.difference_update(unmarked)
                unmarked.clear()
        except TransientError as exc:
            log.warning("effect %s will be retried: %s", item.key, exc)
            await self._mark_done(unmarked)
            await self._effect_failed(item.key, str(exc))
        except Exception as exc:
            # A bug or an unexpected answer: keep the effect pending (a tick retries it) and say so.
            log.exception("effect %s failed", item.key)
            await self._mark_done(unmarked)
            await self._effect_failed(item.key, f"{type(exc).__name__}: {exc}")
        finally:
            if not done:
                self._running.discard(item.key)

    async def _mark_done(self, keys: list[str]) -> None:
        """Mark ``keys`` done in one statement and let other runs see them again; empties ``keys``."""
        if keys:
            try:
                await self.ctx.store.effects_done(list(keys), self.ctx.clock.now())
            finally:
                self._running.difference_update(keys)
                keys.clear()

    async def _effect_failed(self, key: str, error: str) -> None:
        await self.ctx.store.effect_failed(key, error[:2000], self.ctx.clock.now())

    async def _load(self, deployment_id: str) -> Deployment:
        dep = await self.ctx.store.get_deployment(deployment_id)
        if dep is None:
            raise UnknownDeployment(f"no deployment {deployment_id!r}")
        return dep

    # -- one active deployment per service and environment ------------------------------------------

    async def _begin(self, dep: Deployment) -> Deployment:
        """The first event of a deployment that holds its service and environment."""
        event = admission.first_event(dep, needs_approvals=bool(self.ctx.environment(dep).approvals))
        return await self.handle(dep.id, event, current=dep)  # as just stored or read: not read again

    async def start_next(self, service: str, env: str) -> None:
        """A deployment ended: start the oldest queued request for the same service and environment."""
        async with self.lock_for(f"service:{service}/{env}"):
            active = await self.ctx.store.active_deployments(service, env)
            if any(d.phase is not Phase.REQUESTED for d in active):
                return
            queued = sorted((d for d in active if d.phase is Phase.REQUESTED), key=lambda d: d.created_at)
        if queued:
            try:
                await self._begin(queued[0])
            except TransientError as exc:
                # Another replica took the slot first (the store's one-active rule): stay queued.
                log.info("%s stays queued: %s", queued[0].id, exc)


def _as_stored(new: Deployment, expected_version_no: int) -> Deployment | None:
    """``new`` as ``save_transition`` just stored it, to perform its effects on without reading it
    back; None when the row may differ: free text is redacted on its way into the store, so a
    deployment carrying some (a failure's reason, an emergency's) is read back instead."""
    if new.reason is not None or new.emergency_reason is not None:
        return None
    return replace(new, version_no=expected_version_no + 1)


def _pending(effect: Effect, now: datetime) -> PendingEffect:
    effect_type, payload = effect_to_payload(effect)
    return PendingEffect(effect.key, effect.deployment_id, effect_type, payload, now)
