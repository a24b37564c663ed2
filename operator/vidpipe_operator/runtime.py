"""Everything handlers share for the life of the operator process, built once at startup."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from vidpipe_operator.kube import Kube
from vidpipe_operator.lease import LeaseElector
from vidpipe_operator.listing import SharedListing
from vidpipe_operator.mongo import JobMirror
from vidpipe_operator.offload import IOPool, Urgency
from vidpipe_operator.queue import QueueEntry
from vidpipe_operator.s3 import OutputStorage
from vidpipe_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    mirror: JobMirror
    storage: OutputStorage
    # Threads for the Kubernetes and S3 clients (and presigning).
    io: IOPool
    # Further pools owned by the runtime (shut down with it).
    pools: list[IOPool] = field(default_factory=list)
    # One lock per VideoJob: VideoJob handlers and Job events for the same job never compute
    # and write status concurrently (kopf serialises per object, not across kinds).
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # Last Job facts acted upon, so Job events that change nothing (ready counts, resyncs)
    # cost no API calls.
    seen_jobs: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    # Last progress mirrored to MongoDB per VideoJob.
    progress: dict[tuple[str, str], int] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # VideoJobs with a reconcile in progress, with its urgency (see controller.kick), and those
    # to run once more, with whether that run must mirror to MongoDB even if nothing changed.
    kicking: dict[tuple[str, str], Urgency] = field(default_factory=dict)
    rerun: dict[tuple[str, str], bool] = field(default_factory=dict)
    # Seconds the next retry of a failed MongoDB mirror waits, per VideoJob (controller).
    mirror_backoff: dict[tuple[str, str], float] = field(default_factory=dict)
    # kopf's live index of VideoJobs per namespace (queue.queue_entry), handed over by the
    # first handler call so the resync loop can read it too.
    index: Mapping[str, Collection[QueueEntry]] | None = None
    # A kopf handler call's context (handlers.py keeps the first). kopf.event() needs the event
    # queue kopf sets only while it processes an object, so a reconcile kicked by the resync
    # loop (started by the startup activity, outside any object) could not post its Events.
    handler_context: contextvars.Context | None = None
    # The Lease this replica acts under (None: leader election is off).
    elector: LeaseElector | None = None
    # Kueue mode: each namespace's Workloads, listed once for every waiting job's position.
    workloads: SharedListing = field(init=False)

    def __post_init__(self) -> None:
        self.workloads = SharedListing(
            lambda namespace: self.kube.list_workloads(namespace),
            self.settings.kueue_listing_max_age_seconds,
        )

    async def may_act(self) -> bool:
        """Wait until this replica may write (its Lease renewal is fresh); False once the Lease
        is lost: the process is stopping and must do nothing more (see lease.py)."""
        elector = self.elector
        if elector is None:
            return True
        overdue = False
        while not elector.holds():
            if elector.lost.is_set():
                return False
            if not overdue:
                log.warning("lease renewal overdue: not acting until it is renewed")
                overdue = True
            await asyncio.sleep(0.1)
        return True

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        self.locks.pop((namespace, name), None)
        self.progress.pop((namespace, name), None)
        self.mirror_backoff.pop((namespace, name), None)

    def namespaces(self) -> list[str]:
        return list(self.index or {})

    def entries(self, namespace: str) -> list[QueueEntry]:
        return list((self.index or {}).get(namespace, []))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        # Every task runs in a copy of a handler's context, wherever it was started (the resync
        # loop is started outside any handler): see `handler_context`.
        context = self.handler_context.copy() if self.handler_context is not None else None
        task = asyncio.get_running_loop().create_task(coro, context=context)
        # Keep a reference: the event loop holds tasks only weakly.
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.mirror.close()
        for pool in [self.io, *self.pools]:
            pool.shutdown()
