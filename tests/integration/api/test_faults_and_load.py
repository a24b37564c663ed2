"""Concurrency and exact rate limits (outages of each dependency: test_outages.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Api, Kube, Media
from tests.integration.api.test_uploads import all_source_keys, job_docs, post_video

pytestmark = pytest.mark.integration


async def _burst(api: Api, data: bytes, n: int, owner: str = "alice") -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=api.url, timeout=120, limits=limits) as c:
        return await asyncio.gather(
            *[
                c.post(
                    "/v1/videos",
                    headers=api.headers(owner),
                    files={"file": (f"clip{i}.mp4", data, "video/mp4")},
                )
                for i in range(n)
            ]
        )


def test_fifty_concurrent_uploads(api_factory: Any, media: Media, kube: Kube) -> None:
    # Concurrency caps raised to let the burst through (test_limits.py attacks the caps).
    with api_factory(max_concurrent_uploads=64, max_concurrent_uploads_per_owner=64) as api:
        started = time.monotonic()
        responses = asyncio.run(_burst(api, media.ok.read_bytes(), 50))
        elapsed = time.monotonic() - started
        assert [r.status_code for r in responses] == [202] * 50, [
            r.text for r in responses if r.status_code != 202
        ]
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == 50
        docs = job_docs(api)
        assert {d["_id"] for d in docs} == ids
        assert all(d["cr_created"] for d in docs)
        assert ids <= kube.videojob_names()
        assert elapsed < 120


def test_rate_limit_exact_under_concurrency(api_factory: Any, media: Media) -> None:
    with api_factory(
        rate_owner_per_day=10,
        rate_global_per_day=1000,
        max_concurrent_uploads=64,
        max_concurrent_uploads_per_owner=64,
    ) as api:
        before = all_source_keys(api)
        responses = asyncio.run(_burst(api, media.ok.read_bytes(), 30))
        codes = [r.status_code for r in responses]
        assert codes.count(202) == 10, codes
        assert codes.count(429) == 20, codes
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert len(job_docs(api)) == 10
        assert len(all_source_keys(api) - before) == 10
        # Another owner has its own allowance.
        assert post_video(api, media.ok.read_bytes(), owner="bob").status_code == 202


def test_global_rate_limit(api_factory: Any, media: Media) -> None:
    with api_factory(rate_global_per_day=3) as api:
        codes = [
            post_video(api, media.ok.read_bytes(), owner=o).status_code
            for o in ("alice", "bob", "alice", "bob")
        ]
        assert codes == [202, 202, 202, 429]
