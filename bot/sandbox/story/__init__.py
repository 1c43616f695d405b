"""``shipthread sandbox``: the story of Shipthread played on the emulators, and its interactive rehearsal.

Import only from here (``__all__`` below), never from a module inside. The package holds: ``files``
(the sandbox's own playbook and config), ``processes`` (Prometheus and ``shipthread serve`` as
processes of their own), ``stack`` (everything the sandbox runs), ``mrkdwn``, ``block_kit`` and
``transcript`` (a Slack thread as a terminal shows it, from the Block Kit the bot sent),
``progress`` (a bar for long waits), ``screen`` (what the people see, read back from the Slack
emulator), ``play`` (the scripted story), ``prometheus_choice`` (what either plays with or without
Prometheus) and ``interactive`` (a prompt instead of a script).
"""

from __future__ import annotations

from bot.sandbox.story.block_kit import ButtonNumbers, Options
from bot.sandbox.story.files import playbook
from bot.sandbox.story.interactive import interactive_command
from bot.sandbox.story.mrkdwn import Directory, Mrkdwn, Style
from bot.sandbox.story.play import REASON, story_command
from bot.sandbox.story.progress import Progress, progress_line
from bot.sandbox.story.prometheus_choice import PROMETHEUS_VARIABLE, guarded_places, without_prometheus
from bot.sandbox.story.transcript import Thread, live_lines, pressable, render_thread, threads_of

__all__ = [
    "PROMETHEUS_VARIABLE",
    "REASON",
    "ButtonNumbers",
    "Directory",
    "Mrkdwn",
    "Options",
    "Progress",
    "Style",
    "Thread",
    "guarded_places",
    "interactive_command",
    "live_lines",
    "playbook",
    "pressable",
    "progress_line",
    "render_thread",
    "story_command",
    "threads_of",
    "without_prometheus",
]
