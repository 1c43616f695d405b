"""Shipthread's Slack layer: rendering of threads (pure) and, later, the Bolt app (thin).

``outgoing`` and ``thread`` turn the engine's notifications into the messages of a deployment's
thread; ``blocks`` and friends build Block Kit; ``actions`` names the buttons. Nothing in the
rendering modules does I/O: the notifier in ``bot.adapters`` sends what they return.
"""
