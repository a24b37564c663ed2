"""The few Kubernetes API calls the operator makes, as coroutines over the sync client.

The kubernetes client is blocking; each call runs in the operator's I/O thread pool. Reads use
`_preload_content=False` so we get the API server's JSON as plain dicts (the same shape kopf gives
handlers, and what the pure functions in `status` and `jobs` take).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import kubernetes
from kubernetes.client.exceptions import ApiException

from vidpipe import constants
from vidpipe_operator.names import (
    JOB_UID_LABEL,
    KUEUE_GROUP,
    KUEUE_VERSION,
    LABEL_POD_JOB_NAME,
)
from vidpipe_operator.offload import IOPool

T = TypeVar("T")
Body = dict[str, Any]


def load_config() -> kubernetes.client.ApiClient:
    """In-cluster credentials in a Pod, else KUBECONFIG (tests, local runs)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    config = kubernetes.client.Configuration.get_default_copy()
    # One connection per I/O thread, so concurrent reconciles never queue on the pool.
    config.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(config)


def _json(response: Any) -> Body:
    data: Body = json.loads(response.data)
    return data


class Kube:
    def __init__(self, api: kubernetes.client.ApiClient, pool: IOPool):
        self.api = api
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.batch = kubernetes.client.BatchV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(api)
        self._pool = pool

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._pool.run(fn)

    async def _body_or_none(self, call: Callable[[], Any]) -> Body | None:
        """The response body, or None when the object does not exist (404)."""
        try:
            return _json(await self._run(call))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def get_videojob(self, namespace: str, name: str) -> Body | None:
        call = partial(
            self.custom.get_namespaced_custom_object,
            constants.GROUP,
            constants.VERSION,
            namespace,
            constants.PLURAL,
            name,
            _preload_content=False,
        )
        return await self._body_or_none(call)

    async def list_videojobs(self, namespace: str | None) -> list[Body]:
        """Every VideoJob in `namespace` (None: all namespaces)."""
        g, v, p = constants.GROUP, constants.VERSION, constants.PLURAL
        if namespace is None:
            call = partial(self.custom.list_cluster_custom_object, g, v, p, _preload_content=False)
        else:
            call = partial(
                self.custom.list_namespaced_custom_object,
                g,
                v,
                namespace,
                p,
                _preload_content=False,
            )
        items: list[Body] = _json(await self._run(call)).get("items", [])
        return items

    async def videojob_job_ids(self, namespace: str | None) -> set[str]:
        """spec.jobId of every VideoJob in `namespace` (None: all namespaces)."""
        return {str(item["spec"]["jobId"]) for item in await self.list_videojobs(namespace)}

    async def remove_finalizer(self, namespace: str, name: str, finalizer: str) -> None:
        """Drop one finalizer. The merge patch carries the resourceVersion it was computed from,
        so a concurrent change makes it fail (409) rather than drop someone else's finalizer; the
        caller retries. (The client sends custom-object patches as merge patches only.)"""
        current = await self.get_videojob(namespace, name)
        meta = (current or {}).get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if finalizer not in finalizers:
            return
        finalizers.remove(finalizer)
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        call = partial(
            self.custom.patch_namespaced_custom_object,
            constants.GROUP,
            constants.VERSION,
            namespace,
            constants.PLURAL,
            name,
            patch,
            _preload_content=False,
        )
        await self._body_or_none(call)

    async def patch_videojob_status(self, namespace: str, name: str, patch: Body) -> Body | None:
        """JSON merge patch of status: only the keys we send change, so status.progress (owned
        by the processor through server-side apply) is never overwritten by the operator."""
        call = partial(
            self.custom.patch_namespaced_custom_object_status,
            constants.GROUP,
            constants.VERSION,
            namespace,
            constants.PLURAL,
            name,
            {"status": patch},
            field_manager=constants.FIELD_MANAGER_OPERATOR,
            _preload_content=False,
        )
        return await self._body_or_none(call)

    async def get_job(self, namespace: str, name: str) -> Body | None:
        call = partial(self.batch.read_namespaced_job, name, namespace, _preload_content=False)
        return await self._body_or_none(call)

    async def _create(self, create: Callable[..., Any], manifest: Body) -> Body | None:
        """POST `manifest` with `create` (a namespaced create_* call): the created object, or
        None when one of that name already exists (409)."""
        call = partial(
            create,
            manifest["metadata"]["namespace"],
            manifest,
            field_manager=constants.FIELD_MANAGER_OPERATOR,
            _preload_content=False,
        )
        try:
            return _json(await self._run(call))
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    async def create_job(self, manifest: Body) -> tuple[Body, bool]:
        """Create the Job; (existing Job, False) when it is already there (409)."""
        created = await self._create(self.batch.create_namespaced_job, manifest)
        if created is not None:
            return created, True
        meta = manifest["metadata"]
        existing = await self.get_job(meta["namespace"], meta["name"])
        if existing is None:  # deleted between the 409 and the read: let the caller retry
            raise RuntimeError(f"Job {meta['name']} vanished while being created")
        return existing, False

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Delete the Job in the foreground: the Job object stays until its Pods are gone, so
        its DELETED event means "nothing runs any more" (used to clean partial outputs)."""
        call = partial(
            self.batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy="Foreground",
            _preload_content=False,
        )
        try:
            await self._run(call)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    async def list_job_pods(self, namespace: str, job_name: str) -> list[Body]:
        call = partial(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"{LABEL_POD_JOB_NAME}={job_name}",
            _preload_content=False,
        )
        items: list[Body] = _json(await self._run(call)).get("items", [])
        return items

    async def create_child(self, manifest: Body) -> bool:
        """Create a ServiceAccount, Role or RoleBinding; False when it exists (409).

        Their content depends only on the VideoJob's name and uid, so an existing one (from
        before an operator restart) is already right.
        """
        create = {
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[manifest["kind"]]
        return await self._create(create, manifest) is not None

    async def create_local_queue(self, manifest: Body) -> bool:
        """Kueue mode: a tenant's LocalQueue; False when it exists (409)."""

        def create(namespace: str, body: Body, **kwargs: Any) -> Any:
            return self.custom.create_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, namespace, "localqueues", body, **kwargs
            )

        return await self._create(create, manifest) is not None

    async def list_workloads(self, namespace: str, job_uid: str | None = None) -> list[Body]:
        """Kueue mode: the namespace's Workloads (the operator only reads them), or only the one
        of the Job with uid `job_uid` (Kueue labels each Workload with its Job's uid)."""
        call = partial(
            self.custom.list_namespaced_custom_object,
            KUEUE_GROUP,
            KUEUE_VERSION,
            namespace,
            "workloads",
            label_selector=f"{JOB_UID_LABEL}={job_uid}" if job_uid else None,
            _preload_content=False,
        )
        items: list[Body] = _json(await self._run(call)).get("items", [])
        return items

    async def put_secret(self, manifest: Body) -> bool:
        """Create the Secret, or replace it when it exists (its URLs may have expired, e.g. for
        a Job re-created after its TTL). True when created."""
        if await self._create(self.core.create_namespaced_secret, manifest) is not None:
            return True
        meta = manifest["metadata"]
        # A replace without resourceVersion is unconditional: the operator is its only writer.
        replace = partial(
            self.core.replace_namespaced_secret,
            meta["name"],
            meta["namespace"],
            manifest,
            field_manager=constants.FIELD_MANAGER_OPERATOR,
            _preload_content=False,
        )
        await self._run(replace)
        return False
