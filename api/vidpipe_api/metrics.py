"""Prometheus metrics on a per-app registry (tests build several apps in one process).

Every label value is drawn from a bounded set: a request's method is one of the methods HTTP
defines (else `OTHER`) and its route is the matched path template (else `unmatched`). The server
accepts any token as a method, so a raw method label let one anonymous client grow the registry
(and the API's memory) without bound.

The metrics are served by their own small app (`metrics_app`) on a separate port, not on the
public one: request counts by route and rejection codes are for the platform's Prometheus, not
for the internet.
"""

from __future__ import annotations

import time
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidpipe.errors import ErrorCode

# The methods RFC 9110 defines plus PATCH; anything else is counted as OTHER.
KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD: Final = "OTHER"


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


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

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def metrics_app(metrics: Metrics) -> Starlette:
    """The app served on the metrics port: `/metrics` and nothing else (no auth, no lifespan)."""

    async def scrape(request: Request) -> Response:
        return metrics.exposition()

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found", status_code=404)

    return Starlette(
        routes=[Route("/metrics", scrape, methods=["GET"])],
        exception_handlers={404: not_found},
    )


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
            method = method_label(str(scope.get("method", "")))
            self.metrics.requests.labels(
                method=method, route=route, status=status_label(status)
            ).inc()
            self.metrics.latency.labels(method=method, route=route).observe(
                time.perf_counter() - started
            )
