"""VideoJob custom resources through the Kubernetes API (sync client, always in worker threads)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from vidpipe.constants import (
    API_VERSION,
    GROUP,
    KIND,
    LABEL_COMPONENT,
    LABEL_JOB_ID,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_PART_OF,
    PART_OF,
    PLURAL,
    VERSION,
)
from vidpipe.models import VideoJobSpec
from vidpipe_api.errors import ClusterUnavailable, VideoJobRejected
from vidpipe_api.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# Statuses that answer for the request, not the server: 404/409 are results, 400/422 a verdict on
# the object (schema, CEL). 401/403/429 and 5xx are the cluster's or our configuration's state
# and may pass, so they stay retryable (a broken RBAC must not fail every job for good).
_ANSWERS = frozenset({400, 404, 409, 422})
_INVALID = frozenset({400, 422})


def build_videojob(spec: VideoJobSpec, namespace: str) -> dict[str, Any]:
    """The VideoJob manifest for one accepted upload (pure; name = job id)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": spec.job_id,
            "namespace": namespace,
            "labels": {
                LABEL_JOB_ID: spec.job_id,
                LABEL_OWNER: spec.owner,
                LABEL_PART_OF: PART_OF,
                LABEL_COMPONENT: "videojob",
                LABEL_MANAGED_BY: "vidpipe-api",
            },
        },
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


class Cluster:
    def __init__(self, settings: Settings) -> None:
        self.namespace = settings.namespace
        self.timeout = settings.kube_timeout_seconds
        if settings.kubeconfig is not None:
            api_client = config.new_client_from_config(config_file=str(settings.kubeconfig))
        else:
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            api_client = client.ApiClient(cfg)
        # Fail fast instead of urllib3's default retries: the reconciler retries for us.
        api_client.configuration.retries = False
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.version = client.VersionApi(api_client)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(
                partial(fn, *args, _request_timeout=self.timeout, **kwargs)
            )
        except ApiException as exc:
            if exc.status in _ANSWERS:
                raise
            log.warning("kubernetes api error", extra={"status": exc.status})
            raise ClusterUnavailable() from exc
        except Exception as exc:  # urllib3/socket errors: the API server is not answering
            log.warning("kubernetes api unreachable", extra={"error": type(exc).__name__})
            raise ClusterUnavailable() from exc

    def close(self) -> None:
        self.api_client.close()

    async def ping(self) -> None:
        await self.run(self.version.get_code)

    async def create(self, spec: VideoJobSpec) -> bool:
        """Create the VideoJob; False if it already exists (creation is idempotent by name)."""
        try:
            await self.run(
                self.custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                build_videojob(spec, self.namespace),
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status in _INVALID:
                raise VideoJobRejected(exc.status, _reason(exc)) from exc
            raise ClusterUnavailable(f"VideoJob creation refused ({exc.status})") from exc
        return True

    async def request_cancel(self, name: str) -> bool:
        """Set spec.cancel; False if the VideoJob does not exist."""
        return await self._on_videojob(
            self.custom.patch_namespaced_custom_object, name, {"spec": {"cancel": True}}
        )

    async def delete(self, name: str) -> bool:
        """Delete the VideoJob (its Job and Pods go with it by owner reference)."""
        return await self._on_videojob(
            self.custom.delete_namespaced_custom_object, name, propagation_policy="Background"
        )

    async def _on_videojob(
        self, fn: Callable[..., object], name: str, *args: Any, **kwargs: Any
    ) -> bool:
        """Call `fn` (a CustomObjectsApi method) on the named VideoJob; False if it is gone."""
        try:
            await self.run(fn, GROUP, VERSION, self.namespace, PLURAL, name, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ClusterUnavailable() from exc
        return True


def _reason(exc: ApiException) -> str:
    """The API server's own message (a Status object's `message`), else the HTTP reason."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "invalid")
