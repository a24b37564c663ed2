"""The local endpoint that `make up` prints survives the API Pod being replaced (issue 12: when
the API Pod restarted, the single `kubectl port-forward` died with it and 127.0.0.1:8000 stayed
dead until `make up` was run again). `hack/platform.sh up` is run as a user runs it, on its own
release and a free port, then the API Pod is deleted and the same address must answer again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.utils.cluster import REPO, LocalCluster
from tests.utils.platform import Platform, run
from tests.utils.servers import free_port

pytestmark = pytest.mark.e2e

RELEASE = "vidpipe-fwd"


@pytest.fixture(scope="module")
def forwarded(cluster: LocalCluster) -> Iterator[tuple[Platform, str]]:
    port = free_port()
    env = {"VIDPIPE_RELEASE": RELEASE, "VIDPIPE_NAMESPACE": RELEASE, "VIDPIPE_API_PORT": str(port)}
    script = str(REPO / "hack" / "platform.sh")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        run(script, "up", cluster=cluster)
        yield Platform(cluster, RELEASE, f"http://127.0.0.1:{port}", ""), script
    finally:
        run(script, "down", cluster=cluster, check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_local_endpoint_survives_the_api_pod_being_replaced(
    forwarded: tuple[Platform, str],
) -> None:
    platform, _ = forwarded
    assert _answers(platform.base_url)
    old = platform.api_pod()["metadata"]["name"]
    platform.kubectl("delete", "pod", old, "--wait=true")
    # Fails with a single port-forward: it exits with its Pod and nothing starts another.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _answers(platform.base_url) and platform.api_pod()["metadata"]["name"] != old:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"{platform.base_url} did not answer again after {old} was replaced")
    assert platform.api_pod()["metadata"]["name"] != old


def test_down_stops_the_forward(cluster: LocalCluster, forwarded: tuple[Platform, str]) -> None:
    platform, script = forwarded
    run(script, "down", cluster=cluster)
    # No supervisor may outlive `down`: it would bring the forward back.
    time.sleep(3)
    assert not _answers(platform.base_url)
    pidfile = (
        REPO
        / ".local"
        / "cluster"
        / "pids"
        / f"port-forward-{platform.base_url.rsplit(':', 1)[1]}.pid"
    )
    assert not pidfile.exists()
