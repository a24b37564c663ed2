"""Everything handlers share for the life of the operator process, built once at startup."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vidpipe_operator.kube import Kube
from vidpipe_operator.mirror import JobMirror
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.storage import OutputStorage


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    mirror: JobMirror
    storage: OutputStorage
    executor: ThreadPoolExecutor
    # Further pools owned by the runtime (shut down with it).
    executors: list[ThreadPoolExecutor] = field(default_factory=list)
    # One lock per VideoJob: VideoJob handlers and Job events for the same job never compute
    # and write status concurrently (kopf serialises per object, not across kinds).
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # Last Job facts acted upon, so Job events that change nothing (ready counts, resyncs)
    # cost no API calls.
    seen_jobs: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    # Last progress mirrored to MongoDB per VideoJob.
    progress: dict[tuple[str, str], int] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # VideoJobs being started by `start_next`, so a burst of events starts each only once.
    kicking: set[tuple[str, str]] = field(default_factory=set)
    # VideoJobs fully reconciled from their first event, so the creation handler that follows
    # has nothing left to do.
    started: set[tuple[str, str]] = field(default_factory=set)

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        self.locks.pop((namespace, name), None)
        self.progress.pop((namespace, name), None)
        self.started.discard((namespace, name))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        self.mirror.close()
        for pool in [self.executor, *self.executors]:
            pool.shutdown(wait=False, cancel_futures=True)
