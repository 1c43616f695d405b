"""The orchestrator: every command, click and poll result becomes an event on one deployment.

``Orchestrator`` is what the engine, the ticks and the Slack layer talk to. It is composed of one
mixin per family of commands over ``bot.engine.handling.Handler`` (the one way a deployment
changes: load, transition, store with its effects in one transaction, perform them):

- ``bot.engine.admit``      ``/deploy`` (the decision is ``bot.domain.admission``)
- ``bot.engine.judgments``  approve, reject, cancel, promote
- ``bot.engine.rollbacks``  ``/rollback`` and the Roll back / Abort buttons
- ``bot.engine.locking``    lock, unlock, who may unlock

Every command checks policy first and answers with an ``Outcome``: a clear message either way,
and no change when refused. The names other modules import from here are re-exported.
"""

from __future__ import annotations

from bot.engine.admit import Admission
from bot.engine.handling import BOT, Handler, IdSource, Outcome, Perform, Timer, TransitionHook
from bot.engine.judgments import Judgments
from bot.engine.locking import Locking
from bot.engine.rollbacks import Rollbacks

__all__ = [
    "BOT",
    "Handler",
    "IdSource",
    "Orchestrator",
    "Outcome",
    "Perform",
    "Timer",
    "TransitionHook",
]


class Orchestrator(Admission, Judgments, Rollbacks, Locking):
    """Every command people give and every event the engine handles, for all deployments."""
