"""An anonymous client sends thousands of requests with made-up methods and paths (issue 11,
finding 1: raw methods as metric labels once OOM-killed the API). The metrics must stay small,
the API's memory bounded, and /metrics must not be served on the public port at all."""

from __future__ import annotations

import random
import string
import sys

import httpx
import pytest

from tests.utils.platform import Platform

pytestmark = pytest.mark.security

REQUESTS = 2000
METRICS_LIMIT_BYTES = 64 * 1024
RSS_GROWTH_LIMIT_BYTES = 20 * 1024 * 1024


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(length))


def test_random_methods_and_paths_do_not_grow_metrics_or_memory(platform: Platform) -> None:
    pod_ip = platform.api_pod()["status"]["podIP"]
    metrics_url = f"http://{pod_ip}:9090/metrics"
    restarts = platform.api_restarts()
    with httpx.Client(timeout=30) as http:
        # Warm up every code path first, so growth measures the attack, not lazy imports.
        for _ in range(50):
            http.request("GET", f"{platform.base_url}/healthz")
        http.get(metrics_url)
        rss_before = platform.api_rss_bytes()
        rng = random.Random(11)
        statuses = set()
        for i in range(REQUESTS):
            method = _token(rng, rng.randint(3, 12))
            path = "/" + "/".join(_token(rng, 6).lower() for _ in range(rng.randint(1, 4)))
            target = "/healthz" if i % 2 else path  # half on a real route, half anywhere
            statuses.add(http.request(method, platform.base_url + target).status_code)
        scrape = http.get(metrics_url)
        public = http.get(f"{platform.base_url}/metrics")
    rss_after = platform.api_rss_bytes()

    # The figures for the record (`pytest -s`).
    sys.stdout.write(
        f"metrics {len(scrape.content)} B after {REQUESTS} requests; "
        f"API RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB\n"
    )
    assert statuses <= {400, 404, 405, 501}, statuses
    assert scrape.status_code == 200
    # Fails if a made-up method or a raw path becomes a label value (each adds a series).
    assert len(scrape.content) < METRICS_LIMIT_BYTES, len(scrape.content)
    assert 'method="OTHER"' in scrape.text
    assert "unmatched" in scrape.text
    assert public.status_code == 404, "metrics must not be served on the public port"
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_BYTES, (rss_before, rss_after)
    assert platform.api_restarts() == restarts
