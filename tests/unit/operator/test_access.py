"""Per-job least privilege: presigned URLs (Secret), ServiceAccount, Role, RoleBinding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe import constants, keys
from vidpipe.models import VideoJobSpec
from vidpipe_operator.access import (
    SIGV4_MAX_SECONDS,
    access_document,
    access_expiring,
    build_access_secret,
    build_role,
    build_role_binding,
    build_service_account,
    output_names,
    url_lifetime,
)
from vidpipe_operator.jobspec import ACCESS_KEY, build_job
from vidpipe_operator.offload import IOPool
from vidpipe_operator.s3 import OutputStorage
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _spec(**spec: Any) -> VideoJobSpec:
    return VideoJobSpec.model_validate(videojob("j-1", **spec)["spec"])


def _fake_presign(method: str, bucket: str, key: str, seconds: int) -> str:
    return f"https://s3.test/{bucket}/{key}?method={method}&expires={seconds}"


def test_output_names_cover_every_file_the_spec_allows() -> None:
    # Fails if a file the processor writes by default (MP4, HLS, images) gets no upload URL.
    assert output_names(_spec()) == [
        "720p.mp4",
        "master.m3u8",
        "720p.m3u8",
        "720p.cmfv",
        "audio.m3u8",
        "audio.cmfa",
        keys.POSTER_NAME,
        keys.STORYBOARD_IMAGE_NAME,
        keys.STORYBOARD_VTT_NAME,
        keys.METADATA_NAME,
        keys.MANIFEST_NAME,
    ]
    lean = _spec(
        outputs={
            "renditions": [{"name": "1080p", "height": 1080}, {"name": "360p", "height": 360}],
            "poster": False,
            "storyboard": {"enabled": False},
            "formats": ["mp4"],
        }
    )
    assert output_names(lean) == ["1080p.mp4", "360p.mp4", keys.METADATA_NAME, keys.MANIFEST_NAME]


def test_output_names_follow_the_formats() -> None:
    # Fails if an unselected format still gets upload URLs (or a selected one gets none).
    hls_only = _spec(
        outputs={
            "renditions": [{"name": "480p", "height": 480}],
            "poster": False,
            "storyboard": {"enabled": False},
            "formats": ["hls"],
        }
    )
    assert output_names(hls_only) == [
        "master.m3u8",
        "480p.m3u8",
        "480p.cmfv",
        "audio.m3u8",
        "audio.cmfa",
        keys.METADATA_NAME,
        keys.MANIFEST_NAME,
    ]


def test_kueue_urls_last_the_cap_and_are_renewed_before_a_late_admission_would_outrun_them() -> (
    None
):
    # Fails if a Job that waits in its Kueue queue longer than its deadline plus margin started
    # with expired URLs (the processor would get 403 on its source and fail), or if the URLs of
    # a Job that has waited only briefly were rewritten on every reconcile.
    kueue = OperatorSettings(
        queueing_mode="kueue", default_active_deadline_seconds=3600, presign_margin_seconds=600
    )
    assert url_lifetime(_spec(), kueue) == SIGV4_MAX_SECONDS
    created = datetime(2026, 1, 1, tzinfo=UTC)
    renew_after = timedelta(seconds=SIGV4_MAX_SECONDS - 4200)
    assert not access_expiring(_spec(), kueue, created, created + timedelta(hours=2))
    assert not access_expiring(
        _spec(), kueue, created, created + renew_after - timedelta(seconds=1)
    )
    assert access_expiring(_spec(), kueue, created, created + renew_after)
    # Builtin mode starts the Job at once; one that waits (suspended by hand) is renewed.
    builtin = OperatorSettings(default_active_deadline_seconds=3600, presign_margin_seconds=600)
    assert access_expiring(_spec(), builtin, created, created + timedelta(seconds=1))


def test_lifetime_is_the_deadline_plus_margin_capped_by_sigv4() -> None:
    settings = OperatorSettings(default_active_deadline_seconds=3600, presign_margin_seconds=600)
    assert url_lifetime(_spec(), settings) == 4200
    assert url_lifetime(_spec(activeDeadlineSeconds=120), settings) == 720
    week = OperatorSettings(default_active_deadline_seconds=SIGV4_MAX_SECONDS)
    assert url_lifetime(_spec(), week) == SIGV4_MAX_SECONDS


def test_document_grants_the_source_read_and_own_outputs_write_only() -> None:
    spec = _spec()
    document = access_document(spec, "out", _fake_presign, 4200, NOW)
    assert document["expiresAt"] == "2026-01-01T01:10:00Z"
    source = document["source"]
    assert (source["bucket"], source["key"]) == ("media", "sources/j-1/source")
    assert source["url"] == "https://s3.test/media/sources/j-1/source?method=GET&expires=4200"
    assert set(document["outputs"]) == set(output_names(spec))
    for name, entry in document["outputs"].items():
        assert entry["key"] == keys.output_key("j-1", name)
        assert entry["url"] == f"https://s3.test/out/{entry['key']}?method=PUT&expires=4200"


def test_real_presigned_urls_name_the_pod_endpoint_and_expire() -> None:
    settings = OperatorSettings(
        s3_endpoint_url="http://127.0.0.1:9000",
        processor_s3_endpoint_url="http://10.88.0.1:9000",
        s3_access_key_id="AKIDOPERATOR",
        s3_secret_access_key="operator-secret-key",
    )
    storage = OutputStorage(settings, IOPool(1, "test-s3"))
    document = access_document(_spec(), "out", storage.presign, 4200, NOW)
    url = urlsplit(document["outputs"]["720p.mp4"]["url"])
    assert (url.scheme, url.netloc, url.path) == (
        "http",
        "10.88.0.1:9000",
        "/out/outputs/j-1/720p.mp4",
    )
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["4200"]
    assert query["X-Amz-Credential"][0].startswith("AKIDOPERATOR/")
    # The secret key signs; it never travels.
    assert "operator-secret-key" not in json.dumps(document)
    get = urlsplit(document["source"]["url"])
    assert get.path == "/media/sources/j-1/source"
    # GET and PUT of one key are different signatures: a GET URL cannot be replayed as a PUT.
    other = storage.presign("PUT", "media", "sources/j-1/source", 4200)
    assert (
        parse_qs(urlsplit(other).query)["X-Amz-Signature"] != parse_qs(get.query)["X-Amz-Signature"]
    )


def _owned(manifest: dict[str, Any]) -> None:
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == ("j-1", "jobs")
    (ref,) = meta["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "VideoJob",
        "j-1",
        "uid-1",
        True,
    )
    assert meta["labels"][constants.LABEL_JOB_ID] == "j-1"


def test_secret_holds_the_document_and_is_owned_by_the_videojob() -> None:
    body = videojob("j-1")
    document = access_document(_spec(), "out", _fake_presign, 60, NOW)
    secret = build_access_secret(body, document)
    _owned(secret)
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    assert json.loads(secret["stringData"][ACCESS_KEY]) == document
    # The Job mounts this very Secret and carries none of its URLs.
    job = build_job(body, OperatorSettings())
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["access"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert "s3.test" not in json.dumps(job)


def test_role_allows_only_this_videojobs_status() -> None:
    body = videojob("j-1")
    role = build_role(body)
    _owned(role)
    assert role["rules"] == [
        {
            "apiGroups": [constants.GROUP],
            "resources": ["videojobs/status"],
            "resourceNames": ["j-1"],
            "verbs": ["get", "patch"],
        }
    ]


def test_service_account_and_binding_tie_the_pod_to_that_role() -> None:
    body = videojob("j-1")
    account, binding = build_service_account(body), build_role_binding(body)
    _owned(account)
    _owned(binding)
    assert account["automountServiceAccountToken"] is False  # the Pod opts in itself
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": build_role(body)["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "j-1", "namespace": "jobs"}]
    pod = build_job(body, OperatorSettings())["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
