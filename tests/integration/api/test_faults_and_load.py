"""Outages of each dependency, concurrency, and exact rate limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.integration.api.conftest import Api, Kube, Media
from tests.integration.api.test_uploads import all_source_keys, job_docs, post_video
from tests.utils.servers import free_port
from vidpipe.errors import VidpipeError
from vidpipe.keys import source_key
from vidpipe.models import Outputs
from vidpipe_api.cluster import Cluster
from vidpipe_api.db import Database
from vidpipe_api.jobs import Ingest, new_job_id
from vidpipe_api.reconciler import reconcile_once

pytestmark = pytest.mark.integration


def test_s3_down_is_503_and_nothing_half_created(
    api_factory: Any, media: Media, kube: Kube
) -> None:
    before = kube.videojob_names()
    dead = f"http://127.0.0.1:{free_port()}"
    with api_factory(s3_endpoint_url=dead, s3_connect_timeout_seconds=1) as api:
        resp = post_video(api, media.ok.read_bytes())
        assert resp.status_code == 503, resp.text
        assert resp.json()["code"] == "storage_unavailable"
        assert job_docs(api) == []
        with httpx.Client(base_url=api.url) as http:
            ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["s3"]["status"] == "unavailable"
    assert kube.videojob_names() == before


def test_mongodb_down_is_503(api_factory: Any, media: Media) -> None:
    dead = f"mongodb://127.0.0.1:{free_port()}/"
    with api_factory() as api:
        live = api.ctx.db
        api.ctx.db = Database(
            api.settings.model_copy(update={"mongo_url": SecretStr(dead), "mongo_timeout_ms": 300})
        )
        before = all_source_keys(api)
        resp = post_video(api, media.ok.read_bytes())
        assert resp.status_code == 503, resp.text
        assert resp.json()["code"] == "database_unavailable"
        assert all_source_keys(api) == before
        with httpx.Client(base_url=api.url) as http:
            ready = http.get("/readyz").json()
        assert ready["checks"]["mongodb"]["status"] == "unavailable"
        api.ctx.db.close()
        api.ctx.db = live


def test_mongodb_down_after_upload_deletes_the_object(api: Api, media: Media) -> None:
    """The accept step itself: the object is stored, the record cannot be written -> undone."""
    dead = api.settings.model_copy(
        update={
            "mongo_url": SecretStr(f"mongodb://127.0.0.1:{free_port()}/"),
            "mongo_timeout_ms": 300,
        }
    )
    ctx = api.ctx
    dead_db = Database(dead)
    ingest = Ingest(ctx.storage, dead_db, ctx.cluster, ctx.validator, ctx.metrics)
    job_id = new_job_id()
    ctx.storage.client.upload_file(str(media.ok), api.settings.s3_bucket, source_key(job_id))

    async def accept() -> None:
        await ingest.accept(
            job_id=job_id,
            owner="alice",
            outputs=Outputs(),
            size=media.ok.stat().st_size,
            filename=None,
            content_type="video/mp4",
            via="test",
        )

    with pytest.raises(VidpipeError) as err:
        asyncio.run(accept())
    dead_db.close()
    assert err.value.code == "database_unavailable"
    assert source_key(job_id) not in all_source_keys(api)


def test_kubernetes_down_job_is_not_lost(
    api_factory: Any, media: Media, kube: Kube, dead_kubeconfig: Path
) -> None:
    with api_factory(
        kubeconfig=dead_kubeconfig,
        kube_timeout_seconds=1,
        reconcile_interval_seconds=0.3,
        reconcile_min_age_seconds=0,
    ) as api:
        resp = post_video(api, media.ok.read_bytes())
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        assert resp.json()["submitted"] is False
        (doc,) = job_docs(api)
        assert doc["cr_created"] is False and doc["phase"] == "Pending"
        assert kube.videojob(job_id) is None
        with httpx.Client(base_url=api.url) as http:
            assert http.get("/readyz").json()["checks"]["kubernetes"]["status"] == "unavailable"
            assert http.get(f"/v1/jobs/{job_id}", headers=api.headers()).status_code == 200
        # The API server comes back: the background reconciler submits the recorded job.
        good = api.settings.model_copy(update={"kubeconfig": kube.kubeconfig})
        api.ctx.ingest.cluster = Cluster(good)
        deadline = time.monotonic() + 15
        while kube.videojob(job_id) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        vj = kube.videojob(job_id)
        assert vj is not None and vj["spec"]["owner"] == "alice"
        while not job_docs(api)[0]["cr_created"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job_docs(api)[0]["cr_created"] is True
        # Idempotent: a second round finds nothing to do and creates no duplicate.
        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 0


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
