"""build_job: the Job manifest derived from a VideoJob and the settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe import constants, exitcodes
from vidpipe_operator.jobs import (
    ACCESS_KEY,
    ACCESS_MOUNT,
    CONTAINER,
    LABEL_VIDEOJOB,
    build_job,
    job_name,
)
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(manifest)["env"]}


def test_name_is_deterministic_and_a_valid_label() -> None:
    assert job_name("j-1") == job_name("j-1") == "vj-j-1"
    long = "a" * 200
    assert job_name(long) == job_name(long) and len(job_name(long)) <= 63
    assert job_name(long) != job_name("a" * 199)
    assert job_name("My.Job") == "vj-my-job"


def test_owned_by_the_videojob_and_labelled(settings: OperatorSettings) -> None:
    manifest = build_job(videojob("j-1"), settings)
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == ("vj-j-1", "jobs")
    (ref,) = meta["ownerReferences"]
    assert ref == {
        "apiVersion": "media.vidpipe.io/v1alpha1",
        "kind": "VideoJob",
        "name": "j-1",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert meta["labels"][constants.LABEL_MANAGED_BY] == "vidpipe-operator"
    assert meta["labels"][constants.LABEL_JOB_ID] == "j-1"
    assert meta["labels"][LABEL_VIDEOJOB] == "j-1"
    assert manifest["spec"]["template"]["metadata"]["labels"] == meta["labels"]


def test_failure_policy_encodes_the_exit_code_contract(settings: OperatorSettings) -> None:
    spec = build_job(videojob(), settings)["spec"]
    fail_job, ignore = spec["podFailurePolicy"]["rules"]
    assert fail_job["action"] == "FailJob"
    assert fail_job["onExitCodes"] == {
        "containerName": CONTAINER,
        "operator": "In",
        "values": [exitcodes.BAD_INPUT],
    }
    assert ignore == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["backoffLimit"] == 3
    assert spec["ttlSecondsAfterFinished"] == 3600


def test_deadline_from_spec_or_settings() -> None:
    settings = OperatorSettings(default_active_deadline_seconds=900)
    assert build_job(videojob(), settings)["spec"]["activeDeadlineSeconds"] == 900
    custom = videojob(activeDeadlineSeconds=120)
    assert build_job(custom, settings)["spec"]["activeDeadlineSeconds"] == 120


def test_hardened_pod(settings: OperatorSettings) -> None:
    manifest = build_job(videojob(), settings)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["enableServiceLinks"] is False
    container = _container(manifest)
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/work", "/tmp", ACCESS_MOUNT}
    assert mounts[ACCESS_MOUNT]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all("emptyDir" in volumes[n] for n in ("work", "tmp"))
    # The presigned URLs come from the job's own Secret, readable by its group only.
    assert volumes["access"]["secret"] == {"secretName": "vj-j-1", "defaultMode": 0o440}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # The token is mounted only for progress reports, with the job's own ServiceAccount.
    assert pod["serviceAccountName"] == "vj-j-1"
    assert pod["automountServiceAccountToken"] is True


def test_processor_environment(settings: OperatorSettings) -> None:
    settings = OperatorSettings(
        s3_endpoint_url="http://127.0.0.1:9000",
        processor_s3_endpoint_url="http://s3.svc:9000",
        output_bucket="out",
        s3_access_key_id="operator-key",
        s3_secret_access_key="operator-secret",
    )
    manifest = build_job(videojob("j-1"), settings)
    env = _env(manifest)
    spec = json.loads(env["VIDPIPE_JOB_SPEC"])
    assert spec["jobId"] == "j-1" and spec["outputs"]["renditions"][0]["height"] == 720
    assert "resources" not in spec  # None is omitted, not sent as null
    assert env["VIDPIPE_OUTPUT_BUCKET"] == "out"
    assert env["VIDPIPE_VIDEOJOB_NAME"] == "j-1"
    assert env["VIDPIPE_VIDEOJOB_NAMESPACE"] == "jobs"
    assert env["VIDPIPE_WORK_DIR"] == "/work"
    assert env["VIDPIPE_ACCESS_FILE"] == f"{ACCESS_MOUNT}/{ACCESS_KEY}"
    # No credentials, no endpoint: S3 only through the presigned URLs in the mounted Secret.
    assert not [name for name in env if name.startswith("AWS_") or "S3" in name]
    text = json.dumps(manifest)
    assert "operator-key" not in text and "operator-secret" not in text
    assert "secretKeyRef" not in text


def test_resources_default_and_override(settings: OperatorSettings) -> None:
    default = _container(build_job(videojob(), settings))["resources"]
    assert default == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    custom = _container(build_job(videojob(resources={"cpu": "3"}), settings))["resources"]
    assert custom["requests"]["cpu"] == custom["limits"]["cpu"] == "3"
    assert custom["limits"]["memory"] == "2Gi"


def test_image_command_and_args_from_settings() -> None:
    settings = OperatorSettings(
        processor_image="localhost/stub:1",
        processor_image_pull_policy="Never",
        processor_command=["/bin/sh", "-c"],
        processor_args=["exit 0"],
    )
    container = _container(build_job(videojob(), settings))
    assert container["image"] == "localhost/stub:1"
    assert container["imagePullPolicy"] == "Never"
    assert container["command"] == ["/bin/sh", "-c"] and container["args"] == ["exit 0"]
    default = _container(build_job(videojob(), OperatorSettings()))
    assert "command" not in default and "args" not in default


def test_same_input_same_manifest(settings: OperatorSettings) -> None:
    assert build_job(videojob(), settings) == build_job(videojob(), settings)


def test_node_selector_only_when_set(settings: OperatorSettings) -> None:
    assert "nodeSelector" not in build_job(videojob(), settings)["spec"]["template"]["spec"]
    pinned = OperatorSettings(processor_node_selector={"vidpipe.io/transcode": "true"})
    pod = build_job(videojob(), pinned)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"vidpipe.io/transcode": "true"}
