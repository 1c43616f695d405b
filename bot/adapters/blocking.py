"""A bounded thread pool for the synchronous client libraries.

python-jenkins, the kubernetes client and prometheus-api-client block; calling them on the event
loop would stall every Slack ack. Each adapter owns one small pool so a slow system cannot starve
the others of threads.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner:
    """Runs blocking calls on at most ``workers`` threads, awaited from the event loop."""

    def __init__(self, name: str, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"shipthread-{name}")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
