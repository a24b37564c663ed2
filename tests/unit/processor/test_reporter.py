"""Progress reporters: the VideoJob status request as a real HTTP server receives it, throttling,
and that reporting failures never raise."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from vidpipe.constants import API_VERSION, FIELD_MANAGER_PROCESSOR
from vidpipe_processor.reporter import KubernetesReporter, Throttle

pytestmark = pytest.mark.unit


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ApiServer:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def api() -> Iterator[ApiServer]:
    state = ApiServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            state.requests.append(Received("PATCH", self.path, dict(self.headers.items()), body))
            payload = b"{}"
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("sa-token-123\n")
    return path


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reporter(api: ApiServer, token: Path, clock: FakeClock | None = None) -> KubernetesReporter:
    return KubernetesReporter(
        api.url,
        "jobs",
        "job-1",
        token_path=token,
        ca_path=None,
        min_interval=2.0,
        clock=clock or FakeClock(),
    )


def test_server_side_apply_of_status_progress(api: ApiServer, token: Path) -> None:
    reporter(api, token).report(42)
    [request] = api.requests
    assert request.method == "PATCH"
    assert request.path == (
        "/apis/media.vidpipe.io/v1alpha1/namespaces/jobs/videojobs/job-1/status"
        f"?fieldManager={FIELD_MANAGER_PROCESSOR}&force=true"
    )
    assert request.headers["Content-Type"] == "application/apply-patch+yaml"
    assert request.headers["Authorization"] == "Bearer sa-token-123"
    assert request.body == {
        "apiVersion": API_VERSION,
        "kind": "VideoJob",
        "metadata": {"name": "job-1"},
        "status": {"progress": 42},
    }


def test_throttled_to_one_update_per_interval_and_rising_only(api: ApiServer, token: Path) -> None:
    clock = FakeClock()
    sender = reporter(api, token, clock)
    sender.report(10)
    sender.report(20)  # too soon: kept as pending
    sender.report(20)
    clock.now += 2.5
    sender.report(30)
    sender.report(25)  # never goes down
    sender.report(100)  # the final value is never held back
    sender.close()
    assert [r.body["status"]["progress"] for r in api.requests] == [10, 30, 100]


def test_close_flushes_the_pending_value(api: ApiServer, token: Path) -> None:
    sender = reporter(api, token)
    sender.report(10)
    sender.report(60)
    sender.close()
    assert [r.body["status"]["progress"] for r in api.requests] == [10, 60]


def test_rejected_or_unreachable_updates_never_raise(
    api: ApiServer, token: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api.status = 403
    clock = FakeClock()
    sender = reporter(api, token, clock)
    sender.report(10)
    clock.now += 3
    sender.report(20)
    assert len(api.requests) == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "HTTP 403" in warnings[0].__dict__["error"]

    unreachable = KubernetesReporter(
        "http://127.0.0.1:9", "jobs", "job-1", token_path=token, ca_path=None, timeout=1
    )
    unreachable.report(50)
    missing_token = KubernetesReporter(
        api.url, "jobs", "job-1", token_path=token.parent / "nope", ca_path=None
    )
    missing_token.report(50)


def test_throttle_alone() -> None:
    clock = FakeClock()
    throttle = Throttle(2.0, clock)
    assert throttle.offer(1) == 1
    assert throttle.offer(2) is None
    assert throttle.flush() == 2
    assert throttle.flush() is None
    clock.now += 5
    assert throttle.offer(2) is None
    assert throttle.offer(3) == 3


def test_missing_cluster_ca_disables_the_transport_not_the_job(
    token: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sender = KubernetesReporter(
        "https://10.96.0.1:443", "jobs", "job-1", token_path=token, ca_path=token.parent / "no-ca"
    )
    sender.report(50)
    sender.close()
    assert any("cannot load the cluster CA" in r.getMessage() for r in caplog.records)
