"""The generated CRD on the real API server: valid VideoJobs accepted, bad ones refused clearly."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import Cluster
from vidpipe import constants
from vidpipe.models import MAX_NAME_LENGTH, NAME_TOO_LONG
from vidpipe_operator.access import (
    build_access_secret,
    build_role,
    build_role_binding,
    build_service_account,
)
from vidpipe_operator.jobspec import build_job
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.integration


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "jobId": "j-1",
        "owner": "alice",
        "source": {"bucket": "media", "key": "sources/j-1/source"},
    }
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def _create(cluster: Cluster, name: str, spec: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }
    created: dict[str, Any] = cluster.custom.create_namespaced_custom_object(
        constants.GROUP, constants.VERSION, cluster.namespace, constants.PLURAL, body, **kwargs
    )
    return created


def _refused(call: Any, status: int = 422) -> str:
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == status, info.value.body
    return str(info.value.body)


def test_minimal_videojob_is_accepted_with_defaults(cluster: Cluster) -> None:
    created = _create(cluster, "valid-min", _spec())
    spec = created["spec"]
    assert spec["cancel"] is False
    assert spec["outputs"]["renditions"] == [
        {"name": "720p", "height": 720, "audioBitrateKbps": 128}
    ]
    assert spec["outputs"]["storyboard"]["intervalSeconds"] == 10
    assert spec["outputs"]["container"] == "mp4"
    assert spec["priority"] == "normal"  # fails if the CRD stopped defaulting it
    # Fails if the CRD stops defaulting formats to both packagings (the processor's default).
    assert spec["outputs"]["formats"] == ["hls", "mp4"]


def test_full_videojob_is_accepted(cluster: Cluster) -> None:
    full = _spec(
        outputs={
            "renditions": [
                {"name": "1080p", "height": 1080, "videoBitrateKbps": 5000},
                {"name": "360p", "height": 360, "audioBitrateKbps": 64},
            ],
            "poster": False,
            "storyboard": {"enabled": True, "intervalSeconds": 2.5, "tileWidth": 120, "columns": 5},
            "audioTrack": 1,
        },
        resources={"cpu": "1500m", "memory": "1Gi"},
        activeDeadlineSeconds=600,
    )
    created = _create(cluster, "valid-full", full)
    assert created["spec"]["outputs"]["renditions"][0]["videoBitrateKbps"] == 5000
    assert created["spec"]["resources"] == {"cpu": "1500m", "memory": "1Gi"}


BAD_SOURCE = {"bucket": "media", "key": "/abs"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_spec(source=None), "spec.source: Required value"),
        (_spec(jobId="Bad_ID"), 'spec.jobId: Invalid value: \\"Bad_ID\\"'),
        (_spec(owner=""), "spec.owner in body should be at least 1 chars long"),
        (
            _spec(source={"bucket": "Bad_Bucket", "key": "k"}),
            "spec.source.bucket in body should match",
        ),
        (_spec(source=BAD_SOURCE), "spec.source.key in body should match"),
        (
            _spec(outputs={"renditions": []}),
            "spec.outputs.renditions in body should have at least 1 items",
        ),
        (
            _spec(outputs={"renditions": [{"name": "tiny", "height": 100}]}),
            "spec.outputs.renditions[0].height in body should be greater than or equal to 144",
        ),
        (
            _spec(outputs={"renditions": [{"name": f"r{i}", "height": 144 + i} for i in range(9)]}),
            "spec.outputs.renditions: Too many: 9: must have at most 8 items",
        ),
        (
            _spec(
                outputs={"renditions": [{"name": "a", "height": 360}, {"name": "a", "height": 720}]}
            ),
            "rendition names must be unique",
        ),
        (
            _spec(outputs={"renditions": [{"name": "master", "height": 360}]}),
            "rendition names audio and master are reserved (HLS playlists)",
        ),
        (_spec(outputs={"formats": ["mp4", "mp4"]}), "formats must be unique"),
        (
            _spec(outputs={"formats": ["dash"]}),
            'spec.outputs.formats[0]: Unsupported value: \\"dash\\"',
        ),
        (
            _spec(outputs={"formats": []}),
            "spec.outputs.formats in body should have at least 1 items",
        ),
        (
            _spec(outputs={"container": "mkv"}),
            'spec.outputs.container: Unsupported value: \\"mkv\\"',
        ),
        (_spec(resources={}), "resources needs cpu or memory"),
        (_spec(resources={"memory": "lots"}), "spec.resources.memory in body should match"),
        (
            _spec(activeDeadlineSeconds=5),
            "spec.activeDeadlineSeconds in body should be greater than or equal to 30",
        ),
        (
            _spec(outputs={"storyboard": {"intervalSeconds": 0.1}}),
            "spec.outputs.storyboard.intervalSeconds in body should be greater than or equal to",
        ),
    ],
)
def test_invalid_videojobs_are_refused(
    cluster: Cluster, spec: dict[str, Any], message: str
) -> None:
    body = _refused(lambda: _create(cluster, "invalid", spec))
    assert message in body, body


def test_unknown_fields_are_refused_with_strict_validation(cluster: Cluster) -> None:
    body = _refused(
        lambda: _create(cluster, "unknown", _spec(colour="red"), field_validation="Strict"), 400
    )
    assert 'unknown field \\"spec.colour\\"' in body, body


def _replace_spec(cluster: Cluster, name: str, **changes: Any) -> None:
    current = cluster.get(name)
    assert current is not None
    current["spec"].update(changes)
    cluster.custom.replace_namespaced_custom_object(
        constants.GROUP, constants.VERSION, cluster.namespace, constants.PLURAL, name, current
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jobId": "j-2"}, "jobId is immutable"),
        ({"owner": "mallory"}, "owner is immutable"),
        ({"source": {"bucket": "media", "key": "other"}}, "source is immutable"),
        ({"outputs": {"renditions": [{"name": "480p", "height": 480}]}}, "outputs is immutable"),
        ({"resources": {"cpu": "1"}}, "spec is immutable except spec.cancel"),
        ({"priority": "high"}, "priority is immutable"),
        (
            {"preset": {"name": "web", "kind": "VideoPreset", "generation": 1}},
            "spec is immutable except spec.cancel",
        ),
    ],
)
def test_spec_is_immutable(cluster: Cluster, changes: dict[str, Any], message: str) -> None:
    name = "immutable"
    if cluster.get(name) is None:
        _create(cluster, name, _spec())
    body = _refused(lambda: _replace_spec(cluster, name, **changes))
    assert message in body, body


def test_cancel_is_one_way(cluster: Cluster) -> None:
    name = "cancel-once"
    _create(cluster, name, _spec())
    cluster.patch_spec(name, {"cancel": True})
    got = cluster.get(name)
    assert got is not None and got["spec"]["cancel"] is True
    body = _refused(lambda: cluster.patch_spec(name, {"cancel": False}))
    assert "cancel cannot be undone" in body, body


def test_status_is_a_validated_subresource(cluster: Cluster) -> None:
    name = "status-sub"
    _create(cluster, name, _spec())
    # Writes to the main resource ignore status...
    cluster.custom.patch_namespaced_custom_object(
        constants.GROUP,
        constants.VERSION,
        cluster.namespace,
        constants.PLURAL,
        name,
        {"status": {"phase": "Succeeded"}},
    )
    got = cluster.get(name)
    assert got is not None and "status" not in got

    # ...the status subresource takes them, validated.
    def patch_status(status: dict[str, Any]) -> None:
        cluster.patch_status(name, status)

    patch_status({"phase": "Running", "progress": 42})
    assert cluster.status(name)["progress"] == 42
    body = _refused(lambda: patch_status({"progress": 101}))
    assert (
        "status.progress: Invalid value: 101: progress in body should be less than or equal to 100"
        in body
    ), body
    body = _refused(lambda: patch_status({"phase": "Done"}))
    assert 'status.phase: Unsupported value: \\"Done\\"' in body, body


def test_short_name_and_printer_columns(
    kube: kubernetes.client.ApiClient, cluster: Cluster
) -> None:
    resources = kubernetes.client.CustomObjectsApi(kube).get_api_resources(
        constants.GROUP, constants.VERSION
    )
    (vj,) = [r for r in resources.resources if r.name == constants.PLURAL]
    assert vj.short_names == ["vj"] and vj.namespaced
    table = kube.call_api(
        f"/apis/{constants.GROUP}/{constants.VERSION}/namespaces/{cluster.namespace}/{constants.PLURAL}",
        "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
        response_type="object",
        _return_http_data_only=True,
    )
    names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", "Phase", "Progress", "Queue", "Position", "Owner", "Duration", "Age"]


def test_a_videojob_name_too_long_for_its_job_is_refused(cluster: Cluster) -> None:
    # Fails if the CRD accepts a name whose Job the API server would refuse (the VideoJob would
    # then wait forever), or refuses the longest name a Job can take.
    body = _refused(lambda: _create(cluster, "n" * (MAX_NAME_LENGTH + 1), _spec()))
    assert NAME_TOO_LONG in body, body
    assert _create(cluster, "n" * MAX_NAME_LENGTH, _spec())["metadata"]["name"]


@pytest.mark.parametrize(
    "name",
    [
        "n" * MAX_NAME_LENGTH,  # the longest the CRD accepts: the Job takes the name as it is
        "o" * 100 + "-." + "p" * 100,  # only under 0.2.0's CRD: the Job gets a shortened name
    ],
)
def test_the_api_server_accepts_the_job_and_access_objects_of_any_videojob_name(
    cluster: Cluster, name: str
) -> None:
    # Fails if job_name gives a name the API server refuses for the Job (its Pods carry it as a
    # label, at most 63 characters; the server refuses 64) or for the per-job objects.
    videojob = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "namespace": cluster.namespace, "uid": "uid-of-the-test"},
        "spec": _spec(),
    }
    job = build_job(videojob, OperatorSettings())
    cluster.batch.create_namespaced_job(cluster.namespace, job, dry_run="All")
    access = {"version": 1, "jobId": "j-1", "source": {}, "outputs": {}}
    cluster.core.create_namespaced_secret(
        cluster.namespace, build_access_secret(videojob, access), dry_run="All"
    )
    cluster.core.create_namespaced_service_account(
        cluster.namespace, build_service_account(videojob), dry_run="All"
    )
    rbac = kubernetes.client.RbacAuthorizationV1Api(cluster.api)
    rbac.create_namespaced_role(cluster.namespace, build_role(videojob), dry_run="All")
    rbac.create_namespaced_role_binding(
        cluster.namespace, build_role_binding(videojob), dry_run="All"
    )
