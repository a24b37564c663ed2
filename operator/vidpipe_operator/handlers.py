"""The kopf handlers: thin, typed, each delegating to a handle_* function.

Import this module (or run `python -m vidpipe_operator`) to register them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import kopf

from vidpipe import constants
from vidpipe_operator.handle_job import handle_job_event
from vidpipe_operator.handle_videojob import (
    handle_delete_videojob,
    handle_reconcile_videojob,
    handle_videojob_event,
)
from vidpipe_operator.jobs import MANAGED_BY
from vidpipe_operator.reconcile import Entries
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.scheduler import QueueEntry, queue_entry
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.startup import handle_startup

VJ = (constants.GROUP, constants.VERSION, constants.PLURAL)
JOBS = ("batch", "v1", "jobs")
OUR_JOBS = {constants.LABEL_MANAGED_BY: MANAGED_BY}
# Timers are declared at import time; read only this one setting here.
RESYNC_SECONDS = OperatorSettings().resync_seconds


def _entries(index: kopf.Index[str, QueueEntry] | None) -> Entries:
    if index is None:  # kopf passes every index to every handler; None means a wiring bug
        raise RuntimeError("the videojob_queue index is not registered")

    def entries(namespace: str) -> Iterable[QueueEntry]:
        return list(index.get(namespace, []))

    return entries


def _ns(namespace: str | None) -> str:
    if namespace is None:  # VideoJobs are namespaced; the CRD says so
        raise kopf.PermanentError("VideoJob without a namespace")
    return namespace


def _rt(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return str(status.get("phase") or "Pending") in {"Pending", "Running"}


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    memo["runtime"] = handle_startup(settings, OperatorSettings(), logger)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    _rt(memo).close()


@kopf.index(*VJ)
def videojob_queue(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, QueueEntry]:
    return {_ns(namespace): queue_entry(dict(body))}


@kopf.on.create(*VJ)
async def videojob_created(
    namespace: str | None,
    name: str,
    retry: int,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    await handle_reconcile_videojob(
        _rt(memo),
        _ns(namespace),
        name,
        entries=_entries(videojob_queue),
        logger=logger,
        trigger="create",
        force_mirror=retry > 0,
    )


@kopf.on.resume(*VJ)
async def videojob_resumed(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    # After a restart MongoDB may lag the CR (killed between the two writes): always mirror.
    await handle_reconcile_videojob(
        _rt(memo),
        _ns(namespace),
        name,
        entries=_entries(videojob_queue),
        logger=logger,
        trigger="resume",
        force_mirror=True,
    )


@kopf.on.update(*VJ, field="spec.cancel")
async def videojob_cancel_changed(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    await handle_reconcile_videojob(
        _rt(memo),
        _ns(namespace),
        name,
        entries=_entries(videojob_queue),
        logger=logger,
        trigger="cancel",
        force_mirror=True,
    )


@kopf.timer(*VJ, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS, when=_unfinished)
async def videojob_resync(
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    # A safety net for lost watch events; normal transitions come from Job events.
    with contextlib.suppress(kopf.TemporaryError):  # still queued: its creation handler polls
        await handle_reconcile_videojob(
            _rt(memo),
            _ns(namespace),
            name,
            entries=_entries(videojob_queue),
            logger=logger,
            trigger="resync",
            force_mirror=True,
        )


@kopf.on.delete(*VJ)
async def videojob_deleted(
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    await handle_delete_videojob(
        _rt(memo), dict(body), entries=_entries(videojob_queue), logger=logger
    )


@kopf.on.event(*VJ)
async def videojob_event(
    type: str,
    body: kopf.Body,
    memo: kopf.Memo,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    await handle_videojob_event(_rt(memo), type, dict(body), entries=_entries(videojob_queue))


@kopf.on.event(*JOBS, labels=OUR_JOBS)
async def job_event(
    type: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    await handle_job_event(
        _rt(memo), type, dict(body), entries=_entries(videojob_queue), logger=logger
    )
