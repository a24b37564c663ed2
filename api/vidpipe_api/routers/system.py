"""Service endpoints without authentication: name, liveness, readiness (and metrics in dev)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from vidpipe.errors import VidpipeError
from vidpipe_api import NAME, __version__
from vidpipe_api.deps import ContextDep

router = APIRouter(tags=["system"])


@router.get("/", summary="Service name and version")
async def root() -> dict[str, str]:
    """Identify the service (no dependency is touched)."""
    return {"name": NAME, "version": __version__, "docs": "/docs"}


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


@router.get(
    "/readyz",
    summary="Readiness: S3, MongoDB and the Kubernetes API",
    responses={503: {"description": "At least one dependency is unreachable"}},
)
async def readyz(ctx: ContextDep) -> JSONResponse:
    """Each dependency reported separately; 503 unless all answer."""
    checks = {
        "s3": await _check(ctx.storage.ping),
        "mongodb": await _check(ctx.db.ping),
        "kubernetes": await _check(ctx.cluster.ping),
    }
    ready = all(c["status"] == "ok" for c in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


# Only mounted when `metrics_port` is 0 (development): production serves it on its own port.
metrics_router = APIRouter(tags=["system"])


@metrics_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    """Requests by route and status, upload bytes, jobs created, rejections by code."""
    return ctx.metrics.exposition()
