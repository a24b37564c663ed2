"""Liveness: the operator is alive while watch events or resync rounds keep arriving.

kopf's own liveness endpoint answers as long as its HTTP server runs, which is exactly the case
its issue tracker reports as silently dead operators (a stalled watch, a blocked loop). Here the
event handlers and the resync loop beat a heartbeat; `/healthz` on its own port fails once no
beat came for `liveness_stale_seconds`, so the kubelet restarts a stuck operator. The resync loop
beats at least every `resync_seconds` even in an idle cluster, so a stale heartbeat means the
event loop or the resync itself is stuck, not that nobody uploads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Heartbeat:
    def __init__(self, stale_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._last = self._clock()
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last = self._clock()

    def age(self) -> float:
        with self._lock:
            return self._clock() - self._last

    def alive(self) -> bool:
        return self.age() < self.stale_seconds


# One per process: the kopf handlers and the resync loop beat it, main() serves it.
HEARTBEAT = Heartbeat(stale_seconds=300.0)


def _handler(heartbeat: Heartbeat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_error(404)
                return
            age = round(heartbeat.age(), 1)
            alive = heartbeat.alive()
            body = json.dumps(
                {"status": "ok" if alive else "stale", "secondsSinceLastActivity": age}
            ).encode()
            self.send_response(200 if alive else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would flood the log

    return Handler


def serve(heartbeat: Heartbeat, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve `/healthz` from a daemon thread, so a blocked event loop cannot answer for itself."""
    server = ThreadingHTTPServer((host, port), _handler(heartbeat))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="liveness", daemon=True).start()
    return server
