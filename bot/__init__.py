"""Shipthread: a Slack-first ChatOps deployment bot.

The package is layered (see pyproject's import-linter contracts): ``bot.domain`` is pure,
``bot.engine`` drives it through the Protocols in ``bot.ports``, ``bot.adapters`` and
``bot.store`` are the only code that touches the outside world, and ``bot.container`` wires them.
"""

__version__ = "0.1.0"
