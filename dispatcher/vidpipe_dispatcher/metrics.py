"""Prometheus metrics of the dispatcher, and the one HTTP port serving them with /healthz."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

DELIVERIES = Counter(
    "vidpipe_dispatcher_deliveries_total",
    "Delivery attempts by outcome (delivered, retry, slow_down, gone, refused, failed, disabled)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "vidpipe_dispatcher_attempt_seconds",
    "Duration of one delivery attempt that reached the receiver",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
EVENT_TO_DELIVERY = Histogram(
    "vidpipe_dispatcher_event_to_delivery_seconds",
    "From an event's time to its successful delivery at an endpoint",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
BACKLOG_AGE = Gauge(
    "vidpipe_dispatcher_backlog_age_seconds",
    "How long the oldest due pending delivery has been waiting (0: none waiting)",
)


def serve(port: int, alive: Callable[[], tuple[bool, float]], host: str = "0.0.0.0") -> None:
    """/metrics and /healthz from a daemon thread; `alive` says whether the loop still turns
    and how long ago its last round ended."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, code = generate_latest(), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                ok, age = alive()
                status = {"status": "ok" if ok else "stale", "secondsSinceLastRound": round(age, 1)}
                body, ctype, code = (
                    json.dumps(status).encode(),
                    "application/json",
                    200 if ok else 503,
                )
            else:
                self.send_error(404)
                return
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes and probes every few seconds would flood the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
