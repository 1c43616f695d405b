"""The store: where deployments, their events, votes, locks, the audit log and idempotency keys live.

SQLAlchemy 2 (async) over SQLite (``aiosqlite``, the default, one file) or PostgreSQL (``asyncpg``,
for several replicas). ``db`` builds the engine, ``models`` holds the tables, ``repository`` maps rows
to and from the domain's frozen values, and ``migrate`` runs the Alembic migrations shipped inside
this package (``shipthread db upgrade``). Nothing outside this package imports SQLAlchemy.
"""
