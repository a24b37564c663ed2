"""Service endpoints without authentication: name, liveness, readiness (and metrics in dev)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from vidpipe.errors import VidpipeError
from vidpipe_api import NAME, __version__
from vidpipe_api.cluster import Cluster
from vidpipe_api.db import Database
from vidpipe_api.deps import ClusterDep, JobsRepoDep, MetricsDep, StorageDep
from vidpipe_api.storage import Storage

router = APIRouter(tags=["system"])


@router.get("/", summary="Service name and version")
async def root() -> dict[str, str]:
    """Identify the service (no dependency is touched).

    `message` and `version` are also what the replaced service answered here, so its clients'
    "is it up" check keeps working (docs/api.md, "Migrating from the replaced service").
    """
    return {
        "name": NAME,
        "version": __version__,
        "docs": "/docs",
        "message": f"{NAME} is running; API documentation at /docs",
    }


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process serves requests; dependencies are `/readyz`'s business."""
    return {"status": "ok"}


async def _check(probe: Any) -> dict[str, str]:
    try:
        await probe()
    except VidpipeError as exc:
        return {"status": "unavailable", "code": exc.code.value}
    except Exception as exc:  # a dependency check must report, never crash the probe
        return {"status": "unavailable", "error": type(exc).__name__}
    return {"status": "ok"}


async def dependency_checks(
    storage: Storage, db: Database, cluster: Cluster
) -> dict[str, dict[str, str]]:
    """S3, MongoDB and the Kubernetes API, each `{"status": "ok"}` or why not."""
    return {
        "s3": await _check(storage.ping),
        "mongodb": await _check(db.ping),
        "kubernetes": await _check(cluster.ping),
    }


@router.get(
    "/readyz",
    summary="Readiness: S3, MongoDB and the Kubernetes API",
    responses={503: {"description": "At least one dependency is unreachable"}},
)
async def readyz(storage: StorageDep, db: JobsRepoDep, cluster: ClusterDep) -> JSONResponse:
    """Each dependency reported separately; 503 unless all answer."""
    checks = await dependency_checks(storage, db, cluster)
    ready = all(c["status"] == "ok" for c in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


# Only mounted when `metrics_port` is 0 (development): production serves it on its own port.
metrics_router = APIRouter(tags=["system"])


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    """Requests by route and status, upload bytes, jobs created, rejections by code."""
    return registry.exposition()
