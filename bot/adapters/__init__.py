"""Adapters: the only modules that import python-jenkins, kubernetes and prometheus-api-client.

Each implements a Protocol of ``bot.ports``, runs its synchronous client library in a bounded thread
pool (``bot.adapters.blocking``), retries transient failures with tenacity
(``bot.adapters.retrying``) and translates library errors into ``bot.errors`` at the edge.
"""
