"""Emulators of the Slack Web API, Jenkins and the Kubernetes API, plus the tools to drive them.

They answer the real URLs of the systems they stand for, so slack-sdk, python-jenkins, the
kubernetes client and kubectl work against them unchanged. Each has a control API under
``/_sandbox/`` for what a test or the sandbox must steer. Used by the tests, the benchmarks and
``shipthread sandbox``. The emulators know nothing of Shipthread: they import none of its modules
("The emulators know nothing of Shipthread" in pyproject.toml).

One package per emulator (``slack``, ``jenkins``, ``kubernetes``), each imported only through its
``__init__``; ``memory`` holds the in-memory stand-ins of the ports and ``chat`` the recording chat,
which implement ``bot.ports`` and so import it, ``bot.domain`` and ``bot.errors`` (never an adapter, the
engine or the store); ``story`` is ``shipthread sandbox``; ``runner`` is ``shipthread sandbox
emulators``; ``server`` (an aiohttp app on a thread) and ``clock`` are what they share. The order
between them is the "Sandbox layers" contract in pyproject.toml.
"""
