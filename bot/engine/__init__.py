"""The engine: drives the pure state machine through the ports, and owns time.

``orchestrator`` turns commands, clicks and poll results into events (``handling``: load →
transition → save with the event and its effects in one transaction → run the effects; the commands
are mixins in ``admit``, ``judgments``, ``rollbacks`` and ``locking``, their decisions pure functions
in ``bot.domain``); ``effects`` performs effects through the CI, Cluster and Chat ports and returns
the event each produced; ``polls`` polls builds and rollouts, ``ticks`` the QoS guard; time is data:
``due_times`` stores when each deployment and watch is next due (``bot.domain.due``), ``due_timer``
is the one timer, waking at the earliest, and ``due_round`` runs what is due; ``Engine.recover``
resumes everything after a restart.
It never imports an adapter or the store: it sees only ``bot.ports``.
"""
