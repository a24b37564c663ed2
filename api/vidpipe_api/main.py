"""Build the FastAPI app: `create_app(settings)` for tests, `uvicorn --factory` in production.

uvicorn --factory vidpipe_api.main:create_app --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
from fastapi import FastAPI
from starlette.types import ASGIApp

from vidpipe_api import NAME, __version__
from vidpipe_api.context import AppContext
from vidpipe_api.errors import BodyLimitAnswer, install_error_handlers
from vidpipe_api.logs import configure_logging
from vidpipe_api.metrics import Metrics, MetricsMiddleware, metrics_app
from vidpipe_api.playback_service import PlaybackService, signer_from_settings
from vidpipe_api.reaper import run_forever as run_reaper
from vidpipe_api.reconciler import run_forever
from vidpipe_api.routers import (
    compat,
    console,
    events,
    jobs,
    playback,
    stream,
    system,
    uploads,
    videos,
    webhooks,
)
from vidpipe_api.settings import Settings, get_settings
from vidpipe_api.streams import StreamSlots
from vidpipe_api.webhooks import WebhookStore

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload videos, then poll their jobs. Authenticate every `/v1` call with an API key:
`Authorization: Bearer vpk_…` or `X-API-Key: vpk_…`.

Errors always have the shape `{"code": "...", "message": "...", "details": {...}}`.

The deprecated `/api/...` paths serve clients of the service this one replaces, in its shapes
(docs/api.md, "Migrating from the replaced service"); new clients use `/v1`.
"""

# Threads for blocking SDK calls (boto3, pymongo, kubernetes): parts in flight and probes of
# many concurrent uploads must not queue behind each other; anyio's default is 40.
WORKER_THREADS = 128


class VidpipeApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outermost: FastAPI's body limiter sits outside every middleware and handler we add.
        return BodyLimitAnswer(super().build_middleware_stack())


def create_app(settings: Settings | None = None, *, start_reconciler: bool = True) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        ctx: AppContext = app.state.ctx
        try:
            await anyio.to_thread.run_sync(ctx.db.ensure_indexes)
            retention = timedelta(days=settings.event_retention_days)
            await anyio.to_thread.run_sync(WebhookStore(ctx.db).ensure_indexes, retention)
            await anyio.to_thread.run_sync(app.state.playback.store.ensure_indexes)
        except Exception as exc:
            # Start anyway: /readyz reports MongoDB and requests get 503 until it is back.
            log.warning("could not create indexes", extra={"error": type(exc).__name__})
        task = None
        if start_reconciler and settings.reconcile_interval_seconds > 0:
            task = asyncio.create_task(
                run_forever(
                    ctx.ingest,
                    settings.reconcile_interval_seconds,
                    settings.reconcile_min_age_seconds,
                )
            )
        # Abandoned sessions, multipart uploads and sources (vidpipe_api.reaper); 0 disables it.
        reaper = None
        if settings.reaper_interval_seconds > 0:
            reaper = asyncio.create_task(run_reaper(ctx.storage, ctx.db, settings))
        try:
            yield
        finally:
            for running in (task, reaper):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
            ctx.close()

    app = VidpipeApp(
        title=NAME,
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # Routes that stream an upload lift it (STREAMED_BODY) and enforce their own limits.
        max_body_size=settings.max_request_body_bytes,
    )
    app.state.ctx = AppContext.build(settings, metrics)
    app.state.playback = PlaybackService(
        settings, app.state.ctx.storage, app.state.ctx.db, signer_from_settings(settings)
    )
    install_error_handlers(app, on_error=metrics.reject)
    app.state.stream_slots = StreamSlots(settings.stream_max_per_key, settings.stream_max_total)
    # The stream's fixed path before jobs' `/v1/jobs/{job_id}`, which would take it as an id.
    for module in (videos, uploads, stream, jobs, system, console):
        app.include_router(module.router)
    app.include_router(webhooks.router)
    app.include_router(events.router)
    app.include_router(playback.router)
    if settings.compat_enabled:
        app.include_router(compat.router)
    if settings.metrics_port == 0:
        app.include_router(system.metrics_router)
    app.state.metrics_app = metrics_app(metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics, router=app.router)
    return app


def run() -> None:
    """Entry point for the container: JSON logs, the API on :8080 and metrics on their own port.

    The metrics server runs on a daemon thread with its own event loop, so a scrape never waits
    behind uploads and the main server alone owns the process's signal handling.
    """
    import threading

    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    if settings.metrics_port:
        scraper = uvicorn.Server(
            uvicorn.Config(
                app.state.metrics_app,
                host="0.0.0.0",
                port=settings.metrics_port,
                lifespan="off",
                log_config=None,
                access_log=False,
            )
        )
        threading.Thread(target=scraper.run, name="metrics", daemon=True).start()
    uvicorn.run(
        app,
        host="0.0.0.0",
        port=8080,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    run()
