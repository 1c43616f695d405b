"""Bringing a database's schema up to date: ``shipthread db upgrade`` and the same at start-up.

The Alembic scripts ship inside the package (``bot/store/migrations``), so an installed wheel or the
Docker image can migrate without a checkout. Alembic is configured here, in code: the URL is passed
through ``Config.attributes`` (never written to a file, never interpolated) and the connection is
opened by ``bot.store.db.create_engine``, so migrations see the same pragmas and drivers as the bot.

Upgrading is idempotent (at head, it does nothing). On PostgreSQL a transaction-scoped advisory lock
serialises replicas that start together; the DDL itself is transactional there, so a failed
migration leaves nothing half-done.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.domain.redact import masked_url
from bot.errors import PermanentError, ShipthreadError, TransientError
from bot.store import db

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (~0.3 s of imports with Mako and Pygments) is imported only where a migration runs or a
# schema is compared: a start on a database already at head reads one row and never loads it.

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
URL_ENV = "SHIPTHREAD_DATABASE_URL"
VERSION_TABLE = "alembic_version"
"""Where Alembic keeps the revision a database is at (its default, one row, column ``version_num``)."""
_REVISION_NAMES = ("revision", "down_revision")
_UPGRADE_LOCK_KEY = 0x5348_4950  # "SHIP": any constant other tools on the same database do not use


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$SHIPTHREAD_DATABASE_URL``, else the default SQLite file; driver spelled out."""
    return db.normalize_url(url or os.environ.get(URL_ENV) or db.DEFAULT_URL)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations (for tests and for ``alembic`` commands)."""
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = url
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision this version of Shipthread knows: the one no packaged script revises.

    Read from the scripts' ``revision`` and ``down_revision`` assignments as text (Alembic's own
    ``ScriptDirectory`` imports Alembic and every script; a test checks that the two agree).
    """
    revised: set[str] = set()
    revisions: set[str] = set()
    for script in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        names = _revision_names(script)
        if "revision" in names:
            revisions.add(str(names["revision"]))
            down = names.get("down_revision")
            revised.update([down] if isinstance(down, str) else down or ())
    heads = revisions - revised
    if len(heads) != 1:
        raise PermanentError(f"the packaged migrations must have one head revision, not {sorted(heads)}")
    return heads.pop()


def _revision_names(script: Path) -> dict[str, Any]:
    """The literals a migration script assigns to ``revision`` and ``down_revision`` at module level
    (``revision: str = "0007"``)."""
    found: dict[str, Any] = {}
    for node in ast.parse(script.read_text(encoding="utf-8"), str(script)).body:
        target: ast.expr
        value: ast.expr | None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in _REVISION_NAMES and value is not None:
            found[target.id] = ast.literal_eval(value)
    return found


async def upgrade(url: str | None = None) -> str:
    """Migrate the database at ``url`` (see ``resolve_url``) to the newest revision; returns it.

    Creates the SQLite file and its folder if needed. Raises ``TransientError`` when the server
    cannot be reached and ``PermanentError`` when it refuses us or a migration fails; the messages
    never contain the URL's password.
    """
    resolved = resolve_url(url)
    _ensure_sqlite_folder(resolved)
    engine = db.create_engine(resolved)
    try:
        connection = await _connect(engine, resolved)
        try:
            head = head_revision()
            if await connection.run_sync(_revisions) == [head]:
                return head  # nothing to do: no lock taken, Alembic not loaded
            await connection.rollback()  # the check's read ends here; the migration's own transaction follows
            config = alembic_config(resolved)
            async with connection.begin():
                return await connection.run_sync(_upgrade_on, config)
        except DBAPIError as exc:
            raise PermanentError(
                f"migrating the database at {masked_url(resolved)} failed: {_reason(exc, resolved)}"
            ) from exc
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def current_revision(url: str | None = None) -> str | None:
    """The revision the database at ``url`` is at; None for a database never migrated."""
    resolved = resolve_url(url)
    engine = db.create_engine(resolved)
    try:
        connection = await _connect(engine, resolved)
        try:
            return await connection.run_sync(_revision_of)
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def schema_differences(url: str | None = None) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the models (empty: none)."""
    resolved = resolve_url(url)
    engine = db.create_engine(resolved)
    try:
        connection = await _connect(engine, resolved)
        try:
            return await connection.run_sync(_compare)
        finally:
            await connection.close()
    finally:
        await engine.dispose()


def upgrade_command(url: str | None) -> int:
    """``shipthread db upgrade [--url URL]``: migrate, say where the database now stands, return 0."""
    resolved = resolve_url(url)
    revision = asyncio.run(upgrade(resolved))
    print(f"database at {masked_url(resolved)} is at revision {revision}")
    return 0


def _upgrade_on(connection: Connection, config: Config) -> str:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    revision = _revision_of(connection)
    assert revision is not None, "upgrade to head left no revision"
    return revision


def _revision_of(connection: Connection) -> str | None:
    """The database's revision with one SELECT (what Alembic's ``get_current_revision`` reads);
    None when the version table does not exist yet or is empty."""
    rows = _revisions(connection)
    if len(rows) > 1:
        raise PermanentError(f"the database is at several revisions at once ({', '.join(rows)}): merge them")
    return str(rows[0]) if rows else None


def _revisions(connection: Connection) -> list[str]:
    """Every revision the database's version table holds (two or more: branches not merged yet,
    which only Alembic's upgrade to a merge revision resolves); empty before the first migration."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return []
    query = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 -- a constant name
    return [str(row) for row in connection.execute(query).scalars()]


def _compare(connection: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bot.store.models import Base

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _connect(engine: AsyncEngine, url: str) -> AsyncConnection:
    where = masked_url(url)
    try:
        return await engine.connect()
    except (OSError, TimeoutError) as exc:
        reason = _reason(exc, url)
        raise TransientError(f"cannot reach the database at {where}: {reason}", retry_in=5) from exc
    except DBAPIError as exc:
        raise PermanentError(f"cannot open the database at {where}: {_reason(exc, url)}") from exc


def _ensure_sqlite_folder(url: str) -> None:
    path = db.sqlite_path(url)
    if path is None:
        return
    try:
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShipthreadError(f"cannot create the folder of the SQLite file {path}: {exc.strerror}") from exc


def _reason(exc: BaseException, url: str) -> str:
    """A one-line reason for ``exc`` that cannot leak the URL's password."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    message = (str(cause).strip().splitlines() or [""])[0] or type(cause).__name__
    password = make_url(url).password
    if password:
        message = message.replace(str(password), "***")
    return message
