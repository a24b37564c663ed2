"""Operator start-up: kopf settings (each with its reason) and the shared Runtime."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import kopf

from vidpipe import constants
from vidpipe_operator.kube import Kube, load_config
from vidpipe_operator.lease import LeaseElector
from vidpipe_operator.mongo import JobMirror
from vidpipe_operator.offload import IOPool
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.s3 import OutputStorage
from vidpipe_operator.settings import OperatorSettings


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base that is never built, fetched or stored.

    kopf builds one (a deep copy of the whole body) for every watch event, even when only
    `on.event` handlers exist and no diff is ever used: 18% of the operator's CPU (start-up
    excluded) in a py-spy profile of bench/operator_throughput.py, on the cores the API server
    needs.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass


def configure_kopf(p: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """kopf's settings, each with its reason."""
    # No finalizer, no handler progress or diff-base annotations: the operator registers only
    # watch-event handlers (handlers.py), which kopf runs without writing to the object.
    p.persistence.diffbase_storage = NoDiffBase()
    # One active replica is guaranteed by our Lease (lease.py); kopf peering would need its own
    # CRDs and still lets replicas of equal priority run together.
    p.peering.standalone = True
    # Namespaces named in settings need no discovery: scanning would list every namespace and CRD
    # (cluster-wide RBAC) and, when refused, retry for about a minute before falling back.
    p.scanning.disabled = bool(settings.namespaces)
    # Events say which component wrote them.
    p.posting.reporting_component = constants.FIELD_MANAGER_OPERATOR
    p.posting.reporting_instance = settings.identity
    # Watches end and restart every few minutes, so a silently dead connection (API server
    # restart behind a load balancer) is noticed within that time, not hours later.
    p.watching.server_timeout = 240
    p.watching.client_timeout = 270
    p.watching.connect_timeout = 10
    # Reconnect quickly after an API server restart, but do not hammer it.
    p.watching.reconnect_backoff = 1.0
    # A hung request must not block a handler for aiohttp's default 5 minutes.
    p.networking.request_timeout = 60
    # Failed handlers (e.g. MongoDB down) retry quickly first, then back off.
    p.execution.default_backoff = 10
    # Bounded per-object workers (kopf's default is one task per object, unbounded); an idle
    # worker frees its place after a second instead of five, so a burst of distinct objects
    # (a restart's initial listing) streams through the cap.
    p.queueing.worker_limit = settings.kopf_worker_limit
    p.queueing.idle_timeout = 1.0
    # kopf's own sync-handler pool; all our blocking calls use Runtime.io instead.
    p.execution.max_workers = 4


def handle_startup(
    kopf_settings: kopf.OperatorSettings,
    settings: OperatorSettings,
    logger: kopf.Logger,
    *,
    elector: LeaseElector | None = None,
) -> Runtime:
    configure_kopf(kopf_settings, settings)
    io = IOPool(settings.io_threads, "vidpipe-io")
    # MongoDB gets its own threads: a slow database must not hold up Job creation and status
    # writes queued behind it in the same pool.
    mongo_io = IOPool(max(2, settings.io_threads // 2), "vidpipe-mongo")
    runtime = Runtime(
        settings=settings,
        kube=Kube(load_config(), io),
        mirror=JobMirror(
            settings.mongo_url.get_secret_value(),
            settings.mongo_database,
            mongo_io,
            settings.mongo_timeout_ms,
            settings.mongo_batch_max,
        ),
        storage=OutputStorage(settings, io),
        io=io,
        pools=[mongo_io],
        elector=elector,
    )
    logging.getLogger(__name__).info(
        f"limit {settings.max_running_per_namespace} running per namespace; "
        f"image {settings.processor_image}"
    )
    logger.info("vidpipe operator configured")
    return runtime
