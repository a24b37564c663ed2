"""Entry point: `python -m vidpipe_operator`. Win the Lease, then run the kopf handlers."""

from __future__ import annotations

import logging
import sys
import threading

import kopf
from prometheus_client import start_http_server

from vidpipe_operator import handlers  # noqa: F401  (registers the handlers with kopf)
from vidpipe_operator.kube import load_config
from vidpipe_operator.lease import LeaseElector
from vidpipe_operator.liveness import HEARTBEAT, serve
from vidpipe_operator.logs import configure_logging
from vidpipe_operator.settings import OperatorSettings

log = logging.getLogger("vidpipe_operator")


def main() -> int:
    settings = OperatorSettings()
    configure_logging(settings.log_level)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    if settings.liveness_port:
        # Serving before the Lease is won: a follower waiting for the Lease is alive too.
        HEARTBEAT.stale_seconds = settings.liveness_stale_seconds
        HEARTBEAT.beat()
        serve(HEARTBEAT, settings.liveness_port)
    elector: LeaseElector | None = None
    stop = threading.Event()
    if settings.leader_election:
        elector = LeaseElector(
            load_config(),
            name=settings.lease_name,
            namespace=settings.lease_namespace,
            identity=settings.identity,
            duration_seconds=settings.lease_duration_seconds,
        )
        elector.acquire(waiting=HEARTBEAT.beat)
        elector.start_renewing()

        def watch_lease() -> None:
            assert elector is not None
            elector.lost.wait()
            stop.set()  # stop kopf: another replica leads now

        threading.Thread(target=watch_lease, name="lease-watch", daemon=True).start()
    try:
        kopf.run(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            stop_flag=stop,
            # Handlers act only while the Lease is freshly renewed (Runtime.may_act).
            memo=kopf.Memo(elector=elector),
        )
    finally:
        if elector is not None and not elector.lost.is_set():
            elector.release()
    if elector is not None and elector.lost.is_set():
        log.error("lost the leader lease; exiting so the replica restarts as a follower")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
