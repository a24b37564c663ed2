"""The kopf handlers: thin, typed, each delegating to a handle_* function.

Only watch-event handlers and an index: no change-detection handlers (on.create, on.delete,
timers), so kopf never adds a finalizer or annotations to a VideoJob (see triggers.py for what
replaces them). Import this module (or run `python -m vidpipe_operator`) to register them.
"""

from __future__ import annotations

from typing import Any

import kopf

from vidpipe import constants
from vidpipe_operator.handle_job import handle_job_event
from vidpipe_operator.handle_videojob import handle_videojob_event
from vidpipe_operator.jobs import MANAGED_BY
from vidpipe_operator.liveness import HEARTBEAT
from vidpipe_operator.reconcile import Entries
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.scheduler import QueueEntry, queue_entry
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.startup import handle_startup
from vidpipe_operator.triggers import resync_forever

VJ = (constants.GROUP, constants.VERSION, constants.PLURAL)
JOBS = ("batch", "v1", "jobs")
OUR_JOBS = {constants.LABEL_MANAGED_BY: MANAGED_BY}


def _entries(rt: Runtime, index: kopf.Index[str, QueueEntry] | None) -> Entries:
    if index is None:  # kopf passes every index to every handler; None means a wiring bug
        raise RuntimeError("the videojob_queue index is not registered")
    rt.index = index  # the same live object every time; the resync loop reads it too
    return rt.entries


def _rt(memo: kopf.Memo) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    runtime = handle_startup(settings, OperatorSettings(), logger, elector=memo.get("elector"))
    runtime.spawn(resync_forever(runtime))
    memo["runtime"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    _rt(memo).close()


@kopf.index(*VJ)
def videojob_queue(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, QueueEntry]:
    if namespace is None:  # VideoJobs are namespaced; the CRD says so
        return {}
    return {namespace: queue_entry(dict(body))}


@kopf.on.event(*VJ)
async def videojob_event(
    type: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    HEARTBEAT.beat()
    rt = _rt(memo)
    entries = _entries(rt, videojob_queue)
    if not await rt.may_act():
        return  # the Lease is lost: the process is stopping
    await handle_videojob_event(rt, type, dict(body), entries=entries, logger=logger)


@kopf.on.event(*JOBS, labels=OUR_JOBS)
async def job_event(
    type: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    HEARTBEAT.beat()
    rt = _rt(memo)
    if not await rt.may_act():
        return  # the Lease is lost: the process is stopping
    await handle_job_event(
        rt, type, dict(body), entries=_entries(rt, videojob_queue), logger=logger
    )
