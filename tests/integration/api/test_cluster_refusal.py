"""When the Kubernetes API refuses a VideoJob as invalid (issue 11, finding 5). A refusal is a
verdict, not an outage: the job fails for good with `job_rejected` and its source is deleted,
and the resubmitter goes on to the jobs behind it instead of stopping at it every round.

The refusal comes from a real ValidatingAdmissionPolicy in the real API server (a platform team's
own policy, the way such refusals happen in production), scoped to this session's namespace."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.integration.api.conftest import Kube, Media
from tests.integration.api.test_uploads import all_source_keys, job_docs, post_video, source_exists
from vidpipe_api.cluster import Cluster
from vidpipe_api.reconciler import reconcile_once

pytestmark = pytest.mark.integration

REFUSED_OWNER = "bob"


def _probe_videojob(namespace: str, owner: str) -> dict[str, Any]:
    return {
        "apiVersion": "media.vidpipe.io/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": f"probe-{uuid.uuid4().hex[:8]}", "namespace": namespace},
        "spec": {
            "jobId": "probe",
            "owner": owner,
            "source": {"bucket": "media", "key": "sources/probe/source"},
        },
    }


def _wait_for_admission(custom: Any, namespace: str, *, refused: bool) -> None:
    """Until a dry-run VideoJob of REFUSED_OWNER is refused (or admitted, `refused=False`)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            custom.create_namespaced_custom_object(
                "media.vidpipe.io", "v1alpha1", namespace, "videojobs",
                _probe_videojob(namespace, REFUSED_OWNER), dry_run="All",
            )  # fmt: skip
            now_refused = False
        except ApiException as exc:
            assert exc.status == 422, exc
            now_refused = True
        if now_refused == refused:
            return
        assert time.monotonic() < deadline, f"admission never became refused={refused}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def refusing_policy(kube: Kube) -> Iterator[str]:
    """Deny every VideoJob of REFUSED_OWNER in the test namespace; removed afterwards."""
    api_client = config.new_client_from_config(config_file=str(kube.kubeconfig))
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"vidpipe-test-refuse-{uuid.uuid4().hex[:6]}"
    admission.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["media.vidpipe.io"],
                            "apiVersions": ["*"],
                            "operations": ["CREATE"],
                            "resources": ["videojobs"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"object.spec.owner != '{REFUSED_OWNER}'",
                        "message": f"{REFUSED_OWNER} may not run jobs here",
                    }
                ],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": kube.namespace}
                    }
                },
            },
        }
    )
    # Policies take effect asynchronously: wait until a dry-run creation is refused.
    custom = client.CustomObjectsApi(api_client)
    _wait_for_admission(custom, kube.namespace, refused=True)
    try:
        yield name
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
        # Removal is asynchronous too: wait until the owner's VideoJobs are admitted again, or
        # the next module's uploads as that owner are refused (seen in CI: test_compat's "bob").
        _wait_for_admission(custom, kube.namespace, refused=False)
        api_client.close()


def test_a_refused_videojob_fails_the_job_for_good(
    api_factory: Any, media: Media, kube: Kube, refusing_policy: str
) -> None:
    with api_factory() as api:
        response = post_video(api, media.ok.read_bytes(), owner=REFUSED_OWNER)
        # Fails on the old code, which answered 202 `submitted: false` and retried forever.
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "job_rejected" and "may not run jobs" in body["message"]
        job_id = body["details"]["jobId"]
        (doc,) = job_docs(api, REFUSED_OWNER)
        assert doc["_id"] == job_id and doc["phase"] == "Failed"
        assert doc["error"]["code"] == "job_rejected"
        assert not source_exists(api, job_id)
        assert kube.videojob(job_id) is None
        # Never picked up again: it is no longer Pending.
        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 0


def test_the_resubmitter_skips_a_refused_job_and_submits_the_rest(
    api_factory: Any, media: Media, kube: Kube, refusing_policy: str, dead_kubeconfig: Path
) -> None:
    with api_factory(kubeconfig=dead_kubeconfig, kube_timeout_seconds=1) as api:
        # The Kubernetes API is down: both uploads are accepted and wait for the reconciler,
        # the refused owner's first so that it is the first one resubmitted.
        refused = post_video(api, media.ok.read_bytes(), owner=REFUSED_OWNER)
        accepted = post_video(api, media.ok.read_bytes(), owner="alice")
        assert (refused.status_code, accepted.status_code) == (202, 202)
        refused_id, accepted_id = refused.json()["id"], accepted.json()["id"]
        good = api.settings.model_copy(update={"kubeconfig": kube.kubeconfig})
        api.ctx.ingest.cluster = Cluster(good)

        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 1
        assert kube.videojob(accepted_id) is not None
        assert kube.videojob(refused_id) is None
        (doc,) = job_docs(api, REFUSED_OWNER)
        assert doc["phase"] == "Failed" and doc["error"]["code"] == "job_rejected"
        assert f"sources/{refused_id}/source" not in all_source_keys(api)
        assert f"sources/{accepted_id}/source" in all_source_keys(api)


def test_duplicate_rendition_names_are_refused_before_anything_is_stored(
    api_factory: Any, media: Media, kube: Kube
) -> None:
    before = kube.videojob_names()
    with api_factory() as api:
        stored = all_source_keys(api)
        options = '{"renditions":[{"name":"a","height":240},{"name":"a","height":360}]}'
        response = post_video(api, media.ok.read_bytes(), fields={"options": options})
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_failed"
        assert "rendition names must be unique" in response.text
        assert all_source_keys(api) == stored and job_docs(api) == []
    assert kube.videojob_names() == before
