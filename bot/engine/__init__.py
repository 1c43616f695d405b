"""The engine: drives the pure state machine through the ports, and owns time.

``orchestrator`` turns commands, clicks and poll results into events (load → transition → save with
the event and its effects in one transaction → run the effects); ``effects`` performs effects
through the CI, Cluster and Chat ports; ``ticks`` polls builds, rollouts and the QoS guard;
``scheduler`` is the timer that calls the ticks; ``recovery`` resumes everything after a restart.
It never imports an adapter or the store: it sees only ``bot.ports``.
"""
