"""The engine's SQLite file, read (and, to seed the 1,000-deployment case, copied) with plain SQL.

Why it exists: the benches must see what the engine did without using the engine's own code (its
repository and models are being rewritten by issue 13), so they read the ``deployments`` and events
tables through the stdlib ``sqlite3``. ``clone_deployments`` copies what the engine stored for one
deployment, for the benches that need more deployments than the old engine can request in minutes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

# -- the store, read with plain SQL ---------------------------------------------------------------


class StoreReader:
    """The SQLite file the engine writes, read-only through the stdlib (never the engine's code)."""

    def __init__(self, database_url: str) -> None:
        self.path = database_url.split("///", 1)[1]

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)) as db:
            return db.execute(sql, args).fetchall()

    def tables(self) -> set[str]:
        return {row[0] for row in self._query("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self._query(f"PRAGMA table_info({table})")}

    def events_table(self) -> str:
        found = self.tables()
        return next(t for t in ("deployment_events", "events") if t in found)

    def phases(self) -> dict[str, int]:
        return dict(self._query("SELECT phase, COUNT(*) FROM deployments GROUP BY phase"))

    def count(self, *phases: str) -> int:
        counts = self.phases()
        return sum(counts.get(p, 0) for p in phases)

    def guard_ticks(self) -> int:
        """Guard ticks stored so far: the deployments' tick counters (the progress a restart resumes
        from), or, in a schema without them, the stored ``GuardTicked`` events."""
        if "guard_ticks" in self.columns("deployments"):
            return int(self._query("SELECT COALESCE(SUM(guard_ticks), 0) FROM deployments")[0][0])
        events = self.events_table()
        return int(self._query(f"SELECT COUNT(*) FROM {events} WHERE type = 'GuardTicked'")[0][0])

    def verifying_ids(self) -> list[str]:
        rows = self._query("SELECT id FROM deployments WHERE phase = 'verifying' ORDER BY id")
        return [row[0] for row in rows]

    def last_seq(self) -> dict[str, int]:
        """Each deployment's number of stored events (its history's length)."""
        events = self.events_table()
        return dict(self._query(f"SELECT deployment_id, COUNT(*) FROM {events} GROUP BY deployment_id"))

    def lifecycles(self) -> list[tuple[str, str, float, float]]:
        """(id, phase, created, updated) of every deployment, as POSIX seconds."""
        rows = self._query("SELECT id, phase, created_at, updated_at FROM deployments")
        return [(i, p, _seconds(c), _seconds(u)) for i, p, c, u in rows]


def _seconds(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).replace(" ", "T")
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


# -- seeding many deployments from a few the engine made ------------------------------------------


def clone_deployments(
    database_url: str, template_id: str, names: list[str], spread_s: float
) -> dict[str, int]:
    """Copy what the engine stored for one deployment to one new deployment per name in ``names``.

    Every table with a ``deployment_id`` column gets a copy of the template's rows, and so does
    ``deployments``; the template's id, service and version are replaced wherever they appear in a
    text value (keys, payloads), integer primary keys are left to the database, and each copy's
    timestamps move back by up to ``spread_s`` so that the copies' guard windows start at different
    moments, as deployments requested one after another do. The engine must be stopped: it picks the
    copies up when it starts, as it resumes any deployment it finds (the restart it must survive).
    Returns the rows copied per table.
    """
    with contextlib.closing(sqlite3.connect(database_url.split("///", 1)[1], timeout=30)) as db:
        db.row_factory = sqlite3.Row
        template = db.execute("SELECT * FROM deployments WHERE id = ?", (template_id,)).fetchone()
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        related = [t for t in tables if t != "deployments" and "deployment_id" in _columns(db, t)]
        copied = dict.fromkeys(["deployments", *related], 0)
        for n, name in enumerate(names):
            new_id = f"bench{n:06d}"
            shift = spread_s * n / max(1, len(names))
            swaps = ((template_id, new_id), (template["service"], name), (template["version"], f"2.{n}.0"))
            for table in ["deployments", *related]:
                key = "id" if table == "deployments" else "deployment_id"
                for row in db.execute(f"SELECT * FROM {table} WHERE {key} = ?", (template_id,)).fetchall():
                    values = {c: _swap(row[c], swaps, shift) for c in row.keys() if not _own_pk(db, table, c)}  # noqa: SIM118
                    marks = ", ".join("?" for _ in values)
                    db.execute(
                        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", tuple(values.values())
                    )
                    copied[table] += 1
        db.commit()
    return copied


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def _own_pk(db: sqlite3.Connection, table: str, column: str) -> bool:
    """An INTEGER PRIMARY KEY the database numbers itself (copied rows get their own)."""
    for r in db.execute(f"PRAGMA table_info({table})"):
        if r[1] == column:
            return bool(r[5]) and str(r[2]).upper() == "INTEGER"
    return False


def _swap(value: Any, swaps: tuple[tuple[str, str], ...], shift_s: float) -> Any:
    if not isinstance(value, str):
        return value
    with contextlib.suppress(ValueError):
        if len(value) >= 19 and value[4] == "-" and value[10] in " T":
            stamp = datetime.fromisoformat(value) - timedelta(seconds=shift_s)
            return stamp.isoformat(sep=value[10])
    for old, new in swaps:
        value = value.replace(old, new)
    return value
