"""The fixtures of every test that runs the real Slack notifier: a Slack emulator and a thread store.

Why a module of its own: the notifier's tests, the chart poster's and the engine's no-secrets test
each need the same two, built the same way; a test module imports them by name (pytest finds a
fixture imported into a module), as ``from tests.support.slack_fixtures import slack as slack``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.sandbox.server import ServerThread
from bot.sandbox.slack import SlackEmulator
from bot.store.db import create_engine
from bot.store.migrate import upgrade
from bot.store.threads import ThreadStore


@pytest.fixture
def slack() -> Iterator[ServerThread]:
    """A fresh Slack emulator, served in its own thread for the test."""
    with ServerThread(SlackEmulator().app, name="slack") as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ThreadStore]:
    """The notifier's thread tables in a fresh, migrated SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade(url)
    engine = create_engine(url)
    yield ThreadStore(engine)
    await engine.dispose()
