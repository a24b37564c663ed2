"""A webhook receiver process for the dispatcher's tests: verifies every request with the
Standard Webhooks reference library and records what it got, one JSON line per request.

    python receiver.py PORT RECORD_FILE --secret whsec_... [--secret ...] [--fail-rate 0.3]
        [--retry-after 2] [--delay 0.05]

What it answers depends on the path's first segment:
  /ok      200                       /flaky  500 at random (--fail-rate), else 200
  /gone    410                       /busy   503 + Retry-After on an id's first request, then 200
  /slow    200 after --delay s       /redirect  302 to /stolen on this receiver (never followed)
Each record: path, host, the webhook headers, `verified` (indexes of the --secret values the
request verifies with), the parsed body, the status answered and the arrival time.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("record", type=Path)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--fail-rate", type=float, default=0.3)
    parser.add_argument("--retry-after", default="2")
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()
    hooks = [Webhook(s) for s in args.secret]
    lock = threading.Lock()
    seen_busy: set[str] = set()
    out = args.record.open("a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrived = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = []
            for i, hook in enumerate(hooks):
                try:
                    hook.verify(body, headers)
                    verified.append(i)
                except WebhookVerificationError:
                    pass
            kind = self.path.strip("/").split("/")[0]
            msg_id = headers.get("webhook-id", "")
            extra: dict[str, str] = {}
            status = 200
            if kind == "flaky" and random.random() < args.fail_rate:
                status = 500
            elif kind == "gone":
                status = 410
            elif kind == "busy":
                with lock:
                    first = msg_id not in seen_busy
                    seen_busy.add(msg_id)
                if first:
                    status, extra = 503, {"Retry-After": args.retry_after}
            elif kind == "slow":
                time.sleep(args.delay)
            elif kind == "redirect":
                status = 302
                extra = {"Location": f"http://127.0.0.1:{args.port}/stolen"}
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = None
            record = {
                "path": self.path,
                "host": headers.get("host"),
                "id": msg_id,
                "timestamp": headers.get("webhook-timestamp"),
                "signatures": headers.get("webhook-signature", "").split(" "),
                "verified": verified,
                "body": parsed,
                "status": status,
                "at": arrived,
            }
            with lock:
                out.write(json.dumps(record) + "\n")
                out.flush()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
