"""What ``shipthread serve`` (and an engine's restart) load before they are ready, and what they leave.

The cold start is mostly imports (bench/footprint.py, bench/recovery.py): these tests pin the cuts
that brought it under its target, each in a fresh interpreter so that nothing the test process has
imported already hides a module the start would load. Alembic is loaded only when a database is not
at head; the kubernetes client's generated API classes (their pydantic models, ~0.6 s) never are.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from bot.errors import PermanentError
from bot.store import db, migrate
from tests.support.k8s_emulator import CLUSTER, NS, Emulator

ROOT = Path(__file__).resolve().parents[1]

HEAVY = (
    "alembic",
    "matplotlib",
    "kubernetes.client.api.apps_v1_api",
    "kubernetes.client.api.core_v1_api",
    "kubernetes.client.models.v1_deployment",
)
"""Modules the start must not load (each costs 0.1-0.6 s of a ~1.5 s start)."""


def _loaded_after(code: str) -> list[str]:
    """Which of ``HEAVY`` a fresh interpreter has imported once ``code`` ran."""
    report = f"import json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    probe = textwrap.dedent(code) + "\n" + report
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    try:
        emu.reset()
        emu.deployment("checkout", replicas=2)
        yield emu
    finally:
        emu.stop()


def test_the_head_revision_read_from_the_scripts_is_alembics() -> None:
    assert migrate.head_revision() == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def test_serving_code_imports_neither_alembic_nor_the_kubernetes_api_classes() -> None:
    loaded = _loaded_after(
        """
        import bot.serve, bot.wiring
        from bot.adapters.k8s_access import load_api_classes
        load_api_classes()  # what the kubernetes adapter's preload runs
        """
    )
    assert loaded == []


async def test_a_database_at_head_is_checked_and_upgraded_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    assert await migrate.upgrade(url) == migrate.head_revision()  # migrating needs Alembic: here, once

    loaded = _loaded_after(
        f"""
        import asyncio
        from bot.store import migrate
        assert asyncio.run(migrate.current_revision({url!r})) == migrate.head_revision()
        assert asyncio.run(migrate.upgrade({url!r})) == migrate.head_revision()
        """
    )
    assert loaded == []


async def test_a_database_at_two_revisions_is_refused_by_name(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await migrate.upgrade(url)
    engine = db.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('9999')")
    finally:
        await engine.dispose()
    with pytest.raises(PermanentError, match="several revisions"):
        await migrate.current_revision(url)


def test_the_cluster_adapter_reads_and_patches_without_the_api_classes(emulator: Emulator) -> None:
    loaded = _loaded_after(
        f"""
        import asyncio
        from bot.adapters.k8s_access import ClusterAccess
        from bot.adapters.kubernetes import KubernetesCluster
        from bot.ports import Target

        async def main() -> None:
            cluster = KubernetesCluster({{{CLUSTER!r}: ClusterAccess(server={emulator.url!r})}}, timeout_s=5)
            target = Target({CLUSTER!r}, {NS!r}, "checkout", "app")
            try:
                await cluster.preload()
                await cluster.set_image(target, "registry.example/checkout:9.9", "dep-9:deploy")
                assert (await cluster.live(target)).image == "registry.example/checkout:9.9"
                await cluster.rollout(target)
                await cluster.undo(target, None, "dep-9:undo")  # lists the ReplicaSets, patches back
                assert (await cluster.live(target)).image != "registry.example/checkout:9.9"
            finally:
                cluster.close()

        asyncio.run(main())
        """
    )
    assert loaded == []
