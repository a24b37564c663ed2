"""The kopf handlers: thin, typed, each delegating to the controller.

Only watch-event handlers and an index: no change-detection handlers (on.create, on.delete,
timers), so kopf never adds a finalizer or annotations to a VideoJob (see controller.py for what
replaces them). Import this module (or run `python -m vidpipe_operator`) to register them.
"""

from __future__ import annotations

import contextvars
from typing import Any

import kopf

from vidpipe import constants
from vidpipe_operator.controller import on_job_event, on_videojob_event, resync_forever
from vidpipe_operator.liveness import HEARTBEAT
from vidpipe_operator.migrations import migrate
from vidpipe_operator.names import MANAGED_BY
from vidpipe_operator.queue import QueueEntry, queue_entry
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.startup import handle_startup

VJ = (constants.GROUP, constants.VERSION, constants.PLURAL)
JOBS = ("batch", "v1", "jobs")
OUR_JOBS = {constants.LABEL_MANAGED_BY: MANAGED_BY}


def _rt(memo: kopf.Memo, index: kopf.Index[str, QueueEntry] | None) -> Runtime:
    runtime: Runtime = memo["runtime"]
    if index is None:  # kopf passes every index to every handler; None means a wiring bug
        raise RuntimeError("the videojob_queue index is not registered")
    runtime.index = index  # the same live object every time; the resync loop reads it too
    if runtime.handler_context is None:
        runtime.handler_context = contextvars.copy_context()
    return runtime


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    runtime = handle_startup(settings, OperatorSettings(), logger, elector=memo.get("elector"))
    runtime.spawn(resync_forever(runtime))
    runtime.spawn(migrate(runtime.kube, list(runtime.settings.namespaces) or [None]))
    memo["runtime"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    runtime.close()


@kopf.index(*VJ)
def videojob_queue(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, QueueEntry]:
    if namespace is None:  # VideoJobs are namespaced; the CRD says so
        return {}
    return {namespace: queue_entry(dict(body))}


@kopf.on.event(*VJ)
@kopf.on.event(*JOBS, labels=OUR_JOBS)
async def watch_event(
    type: str,
    body: kopf.Body,
    resource: kopf.Resource,
    memo: kopf.Memo,
    logger: kopf.Logger,
    videojob_queue: kopf.Index[str, QueueEntry] | None = None,
    **_: Any,
) -> None:
    """Every watch event of a VideoJob or of one of our Jobs."""
    HEARTBEAT.beat()
    rt = _rt(memo, videojob_queue)
    if not await rt.may_act():  # the Lease is lost and the process is stopping
        return
    if resource.group == constants.GROUP:
        await on_videojob_event(rt, type, dict(body), logger)
    else:
        await on_job_event(rt, type, dict(body), logger)
