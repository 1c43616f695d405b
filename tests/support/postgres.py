"""A throwaway PostgreSQL cluster for tests: initdb in a temp folder, a random port, gone afterwards.

Uses the server binaries of the Debian ``postgresql`` package (``initdb``/``pg_ctl`` on PATH, or in
``/usr/lib/postgresql/*/bin``). PostgreSQL refuses to run as root, so when the tests run as root the
binaries run as the ``postgres`` user in a folder it owns; otherwise they run as the current user.
The cluster trusts every local connection (``--auth=trust``) and skips fsync: it is for tests only.

    with PostgresCluster() as cluster:
        url = await cluster.create_database()   # postgresql+asyncpg://postgres@127.0.0.1:PORT/t_…
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import pytest

SERVER_USER = "postgres"


def find_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl) from PATH, else from the newest /usr/lib/postgresql/N/bin."""
    found = shutil.which(name)
    if found:
        return found
    for bin_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bin_dir / name).exists():
            return str(bin_dir / name)
    return None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    missing = [name for name in ("initdb", "pg_ctl") if find_binary(name) is None]
    if missing:
        return (
            f"PostgreSQL server binaries not found ({', '.join(missing)}): "
            "apt-get install -y --no-install-recommends postgresql"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_USER!r} user to run the PostgreSQL server as"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fast_tmp() -> str | None:
    """A RAM-backed folder when there is one: CREATE DATABASE is ~10x faster there than on disk."""
    shm = Path("/dev/shm")
    try:
        if os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 512 * 1024 * 1024:
            return str(shm)
    except OSError:
        pass
    return None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class PostgresCluster:
    """One PostgreSQL server on 127.0.0.1 and a random port, in a temp folder deleted by ``stop``."""

    def __init__(self) -> None:
        self.port = 0
        self.pid: int | None = None
        self._base: Path | None = None
        self._run_as: dict[str, Any] = {}

    @property
    def data_dir(self) -> Path:
        assert self._base is not None, "cluster not started"
        return self._base / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """An asyncpg URL for ``database``; any password works (trust auth), for URL-masking tests."""
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql+asyncpg://{auth}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError(unavailable_reason() or "PostgreSQL binaries not found")
        self._base = Path(tempfile.mkdtemp(prefix="shipthread-pg-", dir=_fast_tmp()))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self._base, user.pw_uid, user.pw_gid)
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        try:
            self._run(
                initdb, "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--no-sync",
                "--encoding=UTF8", "--locale=C",
            )  # fmt: skip
            self._start_server(pg_ctl)
        except BaseException:
            self.stop()
            raise

    def _start_server(self, pg_ctl: str) -> None:
        last_error: subprocess.CalledProcessError | None = None
        for _attempt in range(3):  # another process may take the free port before the server binds it
            self.port = _free_port()
            options = f"-p {self.port} -h 127.0.0.1 -k {self._base} -c fsync=off -c full_page_writes=off"
            try:
                self._run(
                    pg_ctl, "-w", "-t", "30", "-D", str(self.data_dir), "-l", str(self._log),
                    "-o", options, "start",
                )  # fmt: skip
            except subprocess.CalledProcessError as exc:
                last_error = exc
                continue
            self.pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            return
        log = self._log.read_text(errors="replace") if self._log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log[-2000:]}")

    @property
    def _log(self) -> Path:
        assert self._base is not None
        return self._base / "server.log"

    def stop(self) -> None:
        """Stop the server (immediate shutdown, then by PID if it lingers) and delete its folder."""
        pg_ctl = find_binary("pg_ctl")
        if self.pid is None and self._base is not None and (self.data_dir / "postmaster.pid").exists():
            # A start that timed out may have left a server running.
            with contextlib.suppress(ValueError, IndexError, OSError):
                self.pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        if self.pid is not None:
            if pg_ctl is not None:
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self._run(pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "10", "stop")
            self._kill_if_alive(self.pid)
            self.pid = None
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None

    @staticmethod
    def _kill_if_alive(pid: int) -> None:
        deadline = time.monotonic() + 5
        while _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.02)

    def _run(self, *argv: str) -> None:
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self._base,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"},
            **self._run_as,
        )

    async def create_database(self, name: str | None = None) -> str:
        """Create a new, empty database (a fresh name unless given); returns its asyncpg URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=10
        )
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def cluster_or_skip() -> Iterator[PostgresCluster]:
    """The body of a ``postgres_cluster`` fixture: a running cluster, or a skip saying why there is
    none (a failure under ``CI=true``, where a missing server is never a skip)."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    with PostgresCluster() as cluster:
        yield cluster
