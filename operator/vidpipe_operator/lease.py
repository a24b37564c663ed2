"""Leader election on a coordination.k8s.io/v1 Lease: at most one replica runs handlers.

kopf's own peering lets operators of equal priority run side by side (with a warning) and needs
its own CRDs; a Lease is what kube-controller-manager uses and only needs RBAC on `leases`.
The elector runs in a plain thread: it must keep renewing even if the event loop is busy.

Holding the Lease is not enough to act: a leader that has not renewed for `renew_deadline` (two
thirds of the duration, client-go's ratio) stops acting until a renewal succeeds (`holds`). A
successor takes the Lease only once it has expired, a third of the duration later, so two
replicas never act at once even when the old one was frozen (SIGSTOP, a long pause, a suspended
VM) and wakes up with watch events it has not yet handled; its next renewal finds the Lease
taken and the process exits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class LeaseElector:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        duration_seconds: int,
    ):
        self._api = kubernetes.client.CoordinationV1Api(api)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.duration = duration_seconds
        self.renew_deadline = duration_seconds * 2 / 3
        self.lost = threading.Event()
        self._stop = threading.Event()
        # When the last successful renewal was sent (monotonic): the Lease's renewTime is at
        # least that late, so it cannot expire for others before this + duration.
        self._last_renewal = -float("inf")

    def _body(self, *, acquire: bool, transitions: int, version: str | None) -> dict[str, Any]:
        at = _now().isoformat(timespec="microseconds").replace("+00:00", "Z")
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "renewTime": at,
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = at
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version:
            meta["resourceVersion"] = version  # optimistic lock: two candidates, one winner
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    def try_acquire(self) -> bool:
        """Take or renew the Lease if it is free, expired, or already ours."""
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                self._api.create_namespaced_lease(
                    self.namespace, self._body(acquire=True, transitions=0, version=None)
                )
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        renewed = spec.renew_time or spec.acquire_time
        duration = spec.lease_duration_seconds or self.duration
        expired = renewed is None or renewed + timedelta(seconds=duration) < _now()
        if holder and holder != self.identity and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        body = self._body(
            acquire=holder != self.identity,
            transitions=transitions,
            version=lease.metadata.resource_version,
        )
        if holder == self.identity and spec.acquire_time:
            body["spec"]["acquireTime"] = spec.acquire_time.isoformat().replace("+00:00", "Z")
        try:
            self._api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def holds(self) -> bool:
        """True while this replica may act: the Lease is not lost and was renewed recently."""
        return (
            not self.lost.is_set() and time.monotonic() - self._last_renewal < self.renew_deadline
        )

    def _renew(self) -> bool:
        sent = time.monotonic()
        if self.try_acquire():
            self._last_renewal = sent
            return True
        return False

    def acquire(self, waiting: Callable[[], None] = lambda: None) -> None:
        """Block until this process holds the Lease, calling `waiting` at each try (a standby
        replica beats its liveness heartbeat there: waiting is its job, not a stall)."""
        waited = False
        while not self._stop.is_set():
            waiting()
            try:
                if self._renew():
                    log.info(f"leader: {self.identity} holds lease {self.namespace}/{self.name}")
                    return
            except Exception as exc:
                log.warning(f"leader election: {exc}")
            if not waited:
                log.info(f"leader: waiting for lease {self.namespace}/{self.name}")
                waited = True
            self._stop.wait(max(1.0, self.duration / 5))

    def _renew_loop(self) -> None:
        period = max(1.0, self.duration / 3)
        while not self._stop.wait(period):
            try:
                if self._renew():
                    continue
            except Exception as exc:
                # The API server is unreachable (restart, network): keep trying rather than
                # exit, or every API server restart would restart the operator. Past
                # renew_deadline `holds` is False, so nothing acts meanwhile.
                log.warning(f"leader: renewal failed, retrying: {exc}")
                continue
            log.error(f"leader: lease {self.namespace}/{self.name} taken by another replica")
            self.lost.set()
            return

    def start_renewing(self) -> threading.Thread:
        thread = threading.Thread(target=self._renew_loop, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Hand over at once on a clean shutdown instead of making the successor wait."""
        self._stop.set()
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                lease.spec.acquire_time = None
                self._api.replace_namespaced_lease(self.name, self.namespace, lease)
        except Exception as exc:
            log.warning(f"leader: could not release the lease: {exc}")
