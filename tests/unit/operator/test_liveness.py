"""The liveness heartbeat: /healthz answers 200 while beats arrive and 503 once they stop."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.utils.servers import free_port
from vidpipe_operator.liveness import Heartbeat, serve

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(port: int, path: str = "/healthz") -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else {}


def test_healthz_turns_503_when_beats_stop_and_200_when_they_resume() -> None:
    # Fails if the endpoint ignored the heartbeat's age (kopf's own endpoint does).
    clock = Clock()
    heartbeat = Heartbeat(stale_seconds=300, clock=clock)
    port = free_port()
    server = serve(heartbeat, port, host="127.0.0.1")
    try:
        clock.now += 299
        assert get(port) == (200, {"status": "ok", "secondsSinceLastActivity": 299.0})
        clock.now += 2
        assert get(port) == (503, {"status": "stale", "secondsSinceLastActivity": 301.0})
        heartbeat.beat()
        assert get(port)[0] == 200
        assert get(port, "/metrics")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
