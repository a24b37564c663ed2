"""Webhook delivery: state change -> delivery latency, and deliveries per second, one dispatcher.

    .venv/bin/python bench/webhooks.py [--latency-events 100] [--burst 300] [--rounds 2]

A real dispatcher process (`python -m vidpipe_dispatcher`, production settings but for the
allow-list that lets it reach this host) on a private FerretDB, delivering to a healthy receiver
in this process (an HTTP server answering 204 at once). Events are written as the operator and
the API write them (`outbox_insert`), so the state change is the event's insert.

- latency: one event at a time, `--gap` seconds apart; each from just before its insert to its
  arrival at the receiver. Goal (issue 14): p95 < 1 s.
- throughput: `--burst` events inserted at once; deliveries per second from the first insert to
  the last arrival. Baseline, in the same run and alternating with it: the same signed bodies
  POSTed by this process straight to the same receiver with as many connections as the
  dispatcher's `max_in_flight` (urllib3), so the ratio says what the outbox, the claims and the
  SSRF check cost over bare HTTP.
Results: bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "dispatcher"), str(REPO)]

import urllib3  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.integration.dispatcher.conftest import DispatcherProcess, add_endpoint  # noqa: E402
from tests.utils.servers import mongo_server  # noqa: E402

from bench.results import Goal, Recorder, alternate, median, percentile  # noqa: E402
from vidpipe.events import EVENTS_COLLECTION, EventType, JobEvent, job_event, outbox_insert  # noqa: E402
from vidpipe_dispatcher.loop import body_of  # noqa: E402
from vidpipe_dispatcher.settings import DispatcherSettings  # noqa: E402
from vidpipe_dispatcher.signing import headers  # noqa: E402

Doc = dict[str, Any]


class Receiver:
    """Answers 204 at once and keeps the first arrival time of each webhook-id."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        lock = threading.Lock()
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("webhook-id") or ""
                with lock:
                    arrived.setdefault(key, time.time())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in self.arrived for i in ids):
                return
            time.sleep(0.01)
        missing = [i for i in ids if i not in self.arrived]
        raise TimeoutError(f"{len(missing)} of {len(ids)} events never arrived")


def events(tag: str, n: int, owner: str) -> list[JobEvent]:
    at = datetime.now(UTC)
    return [
        job_event(
            EventType.SUCCEEDED,
            job_id=f"{tag}-{i:05d}",
            owner=owner,
            at=at,
            metadata={"order": str(i)},
            data={"phase": "Succeeded", "outputs": [f"outputs/{tag}-{i:05d}/720p.mp4"]},
        )
        for i in range(n)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # Defaults sized to finish in about two minutes at today's ~13 deliveries/s per endpoint.
    parser.add_argument("--latency-events", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between latency events")
    parser.add_argument("--burst", type=int, default=300, help="events per throughput round")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per side")
    args = parser.parse_args()
    recorder = Recorder("webhooks", vars(args))
    settings = DispatcherSettings()
    receiver = Receiver()
    owner = "bench"
    with (
        tempfile.TemporaryDirectory(prefix="vidpipe-webhooks-") as tmp,
        mongo_server(Path(tmp)) as url,
    ):
        client: MongoClient[Doc] = MongoClient(url, tz_aware=True)
        db = client[f"hooks_{secrets.token_hex(3)}"]
        endpoint = add_endpoint(db, f"http://127.0.0.1:{receiver.port}/hook", owner=owner)
        # Production settings, but the receiver is on this host: the allow-list lets it through.
        dispatcher = DispatcherProcess(
            Path(tmp),
            url,
            db.name,
            ALLOWED_HOSTS="127.0.0.1/32",
            RETRY_SCHEDULE_SECONDS=json.dumps(list(settings.retry_schedule_seconds)),
            TIMEOUT_SECONDS=str(settings.timeout_seconds),
            CLAIM_SECONDS=str(settings.claim_seconds),
            POLL_SECONDS=str(settings.poll_seconds),
        )
        try:
            warm = events("warm", 20, owner)
            for event in warm:
                db[EVENTS_COLLECTION].update_one(*outbox_insert(event), upsert=True)
            receiver.wait_for([e.id for e in warm], 120)

            latencies: list[float] = []
            for event in events("lat", args.latency_events, owner):
                start = time.time()
                db[EVENTS_COLLECTION].update_one(*outbox_insert(event), upsert=True)
                receiver.wait_for([event.id], 60)
                latencies.append(receiver.arrived[event.id] - start)
                time.sleep(args.gap)

            secret = endpoint.secrets[0].value
            pool = urllib3.PoolManager(maxsize=settings.max_in_flight)

            def post(event: JobEvent) -> None:
                body = body_of(event)
                signed = headers(event.id, int(time.time()), body, [secret])
                pool.request(
                    "POST",
                    f"http://127.0.0.1:{receiver.port}/hook",
                    body=body,
                    headers={**signed, "Content-Type": "application/json"},
                )

            def dispatched(tag: str) -> float:
                burst = events(tag, args.burst, owner)
                docs = [{"_id": e.id, **outbox_insert(e)[1]["$setOnInsert"]} for e in burst]
                start = time.time()
                db[EVENTS_COLLECTION].insert_many(docs)
                receiver.wait_for([e.id for e in burst], 600)
                return len(burst) / (max(receiver.arrived[e.id] for e in burst) - start)

            def bare(tag: str) -> float:
                burst = events(tag, args.burst, owner)
                start = time.time()
                with ThreadPoolExecutor(settings.max_in_flight) as threads:
                    list(threads.map(post, burst))
                return len(burst) / (time.time() - start)

            counter = iter(range(1_000_000))
            rounds = alternate(
                {
                    "dispatcher": lambda: dispatched(f"d{next(counter)}"),
                    "bare_http": lambda: bare(f"b{next(counter)}"),
                },
                args.rounds,
            )
        finally:
            dispatcher.stop()
            client.close()
    per_second = median(rounds["dispatcher"])
    baseline = median(rounds["bare_http"])
    figures = {
        "latency_p50_seconds": percentile(latencies, 0.5),
        "latency_p95_seconds": percentile(latencies, 0.95),
        "latency_max_seconds": max(latencies),
        "deliveries_per_second": per_second,
        "bare_http_posts_per_second": baseline,
        "ratio_dispatcher_to_bare_http": per_second / baseline,
    }
    path = recorder.write(
        goals=[Goal("latency_p95_seconds", "<", 1.0)],
        figures=figures,
        method={
            "latency": f"{args.latency_events} events one at a time, {args.gap} s apart: from "
            "just before the event's insert (outbox_insert, as the operator writes it) to its "
            "arrival at the receiver",
            "throughput": f"{args.burst} events inserted at once; deliveries per second from the "
            "insert to the last arrival; median of the rounds",
            "baseline": f"the same signed bodies POSTed straight to the receiver by "
            f"{settings.max_in_flight} threads (urllib3), alternating rounds with the dispatcher",
            "dispatcher": "one process, production settings (poll "
            f"{settings.poll_seconds} s, max_in_flight {settings.max_in_flight}, "
            f"max_per_endpoint {settings.max_per_endpoint}), allow-list 127.0.0.1/32",
            "database": "FerretDB on SQLite (tests/utils/servers.py), on this host",
            "receiver": "ThreadingHTTPServer in the bench process, 204 at once",
        },
        rounds={"latency_seconds": latencies, **rounds},
    )
    print(Recorder.summary(path))
    for name, value in figures.items():
        print(f"{name}: {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
