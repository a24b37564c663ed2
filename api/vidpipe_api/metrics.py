"""Prometheus metrics on a per-app registry (tests build several apps in one process)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidpipe.errors import ErrorCode


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vidpipe_api_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vidpipe_api_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.upload_bytes = Counter(
            "vidpipe_api_upload_bytes",
            "Bytes received from clients and stored.",
            registry=self.registry,
        )
        self.jobs_created = Counter(
            "vidpipe_api_jobs_created",
            "Jobs accepted (MongoDB record written).",
            registry=self.registry,
        )
        self.rejections = Counter(
            "vidpipe_api_rejections",
            "Requests refused, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.reconciled = Counter(
            "vidpipe_api_videojobs_reconciled",
            "VideoJobs created late by the background reconciler.",
            registry=self.registry,
        )

    def reject(self, code: ErrorCode) -> None:
        self.rejections.labels(code=code.value).inc()


def _route_template(app: Any, scope: Scope) -> str:
    """The path template (`/v1/jobs/{job_id}`), so ids never explode label cardinality."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    for candidate in getattr(app, "routes", []):
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(candidate.path)
    return "unmatched"


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streamed request bodies pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: Metrics, router: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(self.router, scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=route).observe(
                time.perf_counter() - started
            )
