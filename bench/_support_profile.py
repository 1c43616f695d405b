"""Reading an engine profile (``_support_engine.py --profile``): where the CPU went, by layer.

Why it exists: issue 13 accepts a missed figure only with a profile that shows why, and a raw
pstats table of a few thousand functions says little. This groups the functions' own time
(tottime) by the layer their file belongs to (our store, engine, domain, adapters; SQLAlchemy,
aiosqlite and sqlite3; the kubernetes, Jenkins and HTTP clients; pydantic; logging; asyncio) and
lists the top entries by cumulative and by own time.

    python bench/_support_profile.py out.pstats [--lifecycles N]
"""

from __future__ import annotations

import argparse
import json
import pstats
from collections import defaultdict
from pathlib import Path
from typing import Any

LAYERS: tuple[tuple[str, str], ...] = (
    ("/bot/store/", "store (ours)"),
    ("/bot/engine/", "engine (ours)"),
    ("/bot/domain/", "domain (ours)"),
    ("/bot/adapters/", "adapters (ours)"),
    ("/bot/", "bot, other"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/aiosqlite/", "aiosqlite (thread hops)"),
    ("sqlite3", "sqlite3"),
    ("/kubernetes/", "kubernetes client"),
    ("/jenkins/", "python-jenkins"),
    ("/requests/", "requests (Jenkins)"),
    ("/urllib3/", "urllib3 (Jenkins, kubernetes)"),
    ("/httpx/", "httpx (Prometheus)"),
    ("/httpcore/", "httpcore (Prometheus)"),
    ("/h11/", "httpcore (Prometheus)"),
    ("/pydantic", "pydantic"),
    ("/logging/", "logging"),
    ("/asyncio/", "asyncio"),
    ("/concurrent/", "thread pools"),
    ("/threading.py", "thread pools"),
    ("/selectors.py", "asyncio"),
    ("/json/", "json"),
    ("/ssl.py", "http, other"),
    ("/http/", "http, other"),
    ("/socket.py", "http, other"),
    ("/email/", "http, other"),
)

BUILTIN_LAYERS: tuple[tuple[str, str], ...] = (
    ("sqlite3", "sqlite3"),
    ("select.epoll", "asyncio (waiting in epoll)"),
    ("acquire' of '_thread.lock", "threads waiting (locks)"),
    ("_thread", "threads waiting (locks)"),
    ("_socket", "socket I/O"),
    ("_ssl", "socket I/O"),
    ("json", "json"),
    ("pydantic", "pydantic"),
)


def layer_of(filename: str, name: str) -> str:
    if filename == "~":  # a builtin: named by what it is
        return next((layer for key, layer in BUILTIN_LAYERS if key in name), "builtins, other")
    return next((layer for key, layer in LAYERS if key in filename), "other")


def summary(path: Path, lifecycles: int | None = None, top: int = 20) -> str:
    stats: Any = pstats.Stats(str(path))
    by_layer: dict[str, float] = defaultdict(float)
    for (filename, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        by_layer[layer_of(filename, name)] += tt
    total = sum(by_layer.values())
    per = f" ({total / lifecycles * 1000:.0f} ms per lifecycle)" if lifecycles else ""
    lines = [f"profile {path}: {total:.2f} s of profiled time, all threads{per}"]
    extra = Path(f"{path}.json")
    if extra.exists():
        doc = json.loads(extra.read_text())
        count = doc["statements"] - doc.get("statements_at_start", 0)
        each = f", {count / lifecycles:.1f} per lifecycle" if lifecycles else ""
        lines.append(
            f"SQL statements after start: {count}{each} ({doc['by_verb']}); CPU {doc['cpu_s']:.2f} s"
        )
    lines.append("own time (tottime) by layer (waiting in epoll/locks is idle, not CPU):")
    for layer, seconds in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {seconds:7.2f} s {seconds / total:5.1%}  {layer}")
    for key in ("cumulative", "tottime"):
        lines.append(f"top {top} by {key}:")
        rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][3 if key == "cumulative" else 2])[:top]
        for (filename, line, name), (_cc, nc, tt, ct, _callers) in rows:
            where = f"{short(filename)}:{line}({name})"
            lines.append(f"  {ct:7.2f} cum {tt:7.2f} own {nc:8d} calls  [{layer_of(filename, name)}] {where}")
    return "\n".join(lines)


def short(filename: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--lifecycles", type=int, default=None)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    print(summary(args.profile, args.lifecycles, args.top))
