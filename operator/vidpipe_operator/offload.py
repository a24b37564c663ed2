"""The one way the operator calls a blocking client (kubernetes, boto3, pymongo, presigning).

kopf runs every handler on one event loop; a blocking call there would stall every watch. Each
adapter hands its calls to a thread pool through `offload`, so which pool a call runs in is
decided once, where the adapter is built (startup.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


async def offload(executor: Executor, fn: Callable[[], T]) -> T:
    """Run `fn` in `executor` and wait for it without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(executor, fn)
