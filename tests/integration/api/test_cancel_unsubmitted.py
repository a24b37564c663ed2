"""Cancel of a job whose VideoJob was never created: the cluster was unreachable at upload.

The API reaches the real kube-apiserver through a TCP relay (tests/utils/tcpproxy.py) that the
test takes down and brings back, so the app keeps its own client and connection pool and sees a
real unreachable cluster; the shared API server itself keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.integration.api.conftest import Api, Kube, Media
from tests.integration.api.test_uploads import all_source_keys, job_docs, post_video
from tests.utils.tcpproxy import TcpProxy
from vidpipe.keys import source_key
from vidpipe.record import JobRecord
from vidpipe_api.reconciler import reconcile_once

pytestmark = pytest.mark.integration


@dataclass
class Relayed:
    proxy: TcpProxy
    kubeconfig: Path
    api_factory: Any

    def app(self, min_age: float) -> Any:
        """The app through the relay, its reconciler every 0.3 s for jobs older than `min_age`."""
        return self.api_factory(
            kubeconfig=self.kubeconfig,
            kube_timeout_seconds=1,
            reconcile_interval_seconds=0.3,
            reconcile_min_age_seconds=min_age,
        )


@pytest.fixture
def relay(kube: Kube, api_factory: Any, tmp_path: Path) -> Iterator[Relayed]:
    """A relay to the kube-apiserver and a kubeconfig that goes through it (TLS end to end)."""
    config: dict[str, Any] = yaml.safe_load(kube.kubeconfig.read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    proxy = TcpProxy((server.hostname or "127.0.0.1", server.port or 443))
    with proxy.running():
        for cluster in config["clusters"]:
            # Same host as the certificate names, another port: the relay's.
            cluster["cluster"]["server"] = f"https://{server.hostname}:{proxy.port}"
        path = tmp_path / "relayed.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield Relayed(proxy, path, api_factory)


def accepted_unsubmitted(api: Api, media: Media, proxy: TcpProxy) -> str:
    """Upload while the cluster is unreachable: accepted (202), recorded, no VideoJob."""
    proxy.down()
    resp = post_video(api, media.ok.read_bytes())
    assert resp.status_code == 202, resp.text
    assert resp.json()["submitted"] is False
    return str(resp.json()["id"])


def cancel(api: Api, job_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        resp = http.post(f"/v1/jobs/{job_id}/cancel", headers=api.headers())
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    return body


def phase(api: Api, job_id: str) -> str:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        return str(http.get(f"/v1/jobs/{job_id}", headers=api.headers()).json()["phase"])


def test_cancelled_while_the_cluster_is_down_ends_cancelled_and_is_never_created(
    media: Media, kube: Kube, relay: Relayed
) -> None:
    with relay.app(min_age=0) as api:
        job_id = accepted_unsubmitted(api, media, relay.proxy)
        # Still down: the cancel is recorded and answered, not refused with 503.
        body = cancel(api, job_id)
        assert body["cancelRequested"] is True and body["phase"] == "Pending"
        relay.proxy.start()  # the cluster is reachable again; the background reconciler runs
        deadline = time.monotonic() + 60
        while phase(api, job_id) != "Cancelled":
            assert time.monotonic() < deadline, job_docs(api)
            time.sleep(0.2)
        # Fails if the reconciler creates the VideoJob of a cancelled job (it settles the cancel
        # instead), if the source is kept, or if MongoDB and the API disagree.
        (doc,) = job_docs(api)
        assert doc["phase"] == "Cancelled" and doc["cancel_requested"] is True
        assert doc["finished_at"] is not None and doc["cr_created"] is False
        assert source_key(job_id) not in all_source_keys(api)
        time.sleep(2)  # several more background rounds (every 0.3 s)
        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 0
        assert kube.videojob(job_id) is None


def test_cancelled_once_the_cluster_is_back_ends_cancelled_at_once(
    media: Media, kube: Kube, relay: Relayed
) -> None:
    # The background reconciler would submit the job after an hour; the cancel comes first.
    with relay.app(min_age=3600) as api:
        job_id = accepted_unsubmitted(api, media, relay.proxy)
        # The record as a reconciler round read it, just before the cancel came in.
        (before,) = job_docs(api)
        relay.proxy.start()
        body = cancel(api, job_id)
        # Fails if the cancel leaves the job Pending or keeps its source.
        assert body["phase"] == "Cancelled" and body["finishedAt"] is not None
        assert job_docs(api)[0]["phase"] == "Cancelled"
        assert source_key(job_id) not in all_source_keys(api)
        # Old enough for any reconciler round now: it must still not create the VideoJob.
        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 0
        assert kube.videojob(job_id) is None
        # The round that read the record before the cancel creates the VideoJob now (the
        # cancel found none to stop). Fails if that VideoJob would run a cancelled job.
        asyncio.run(api.ctx.ingest.submit(JobRecord.model_validate(before)))
        videojob = kube.videojob(job_id)
        assert videojob is not None and videojob["spec"].get("cancel") is True
        (doc,) = job_docs(api)
        assert doc["phase"] == "Cancelled" and doc["cr_created"] is True


def test_deleting_a_job_that_never_reached_the_cluster_records_it_cancelled(
    media: Media, kube: Kube, relay: Relayed
) -> None:
    # Nothing but the API knows the phase of a job without a VideoJob: fails if deleting one
    # leaves it Pending (no operator will ever record it), keeps its source, or lets a later
    # reconciler round create its VideoJob.
    with relay.app(min_age=3600) as api:
        job_id = accepted_unsubmitted(api, media, relay.proxy)
        relay.proxy.start()
        with httpx.Client(base_url=api.url, timeout=60) as http:
            assert http.delete(f"/v1/jobs/{job_id}", headers=api.headers()).status_code == 204
        (doc,) = job_docs(api)
        assert doc["deleted"] is True and doc["phase"] == "Cancelled"
        assert doc["finished_at"] is not None and doc["cr_created"] is False
        assert source_key(job_id) not in all_source_keys(api)
        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 0
        assert kube.videojob(job_id) is None
