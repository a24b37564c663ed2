"""build_job: the Job manifest derived from a VideoJob and the settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe import constants, exitcodes
from vidpipe.probe import ProbeLimits
from vidpipe_operator.jobspec import ACCESS_KEY, ACCESS_MOUNT, build_job, job_name
from vidpipe_operator.names import CONTAINER, LABEL_VIDEOJOB
from vidpipe_operator.settings import OperatorSettings
from vidpipe_processor.settings import ProcessorSettings

pytestmark = pytest.mark.unit


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(manifest)["env"]}


def test_the_job_is_named_after_the_videojob() -> None:
    # Fails if a prefix comes back (`vj-vj-<hex>`) or a name that fits is changed.
    assert job_name("j-1") == "j-1"
    assert job_name("a" * 63) == "a" * 63
    assert job_name("vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d") == "vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d"


def test_a_name_too_long_for_a_label_keeps_one_job_of_its_own() -> None:
    # Only a VideoJob created before the CRD's name rule (0.2.0) can be this long. Fails if its
    # Job name is not a valid label value, changes between calls or collides with a neighbour's.
    long = "a" * 100 + "-." + "b" * 100
    assert job_name(long) == job_name(long)
    assert len(job_name(long)) <= 63 and job_name(long)[-1].isalnum()
    assert job_name(long) != job_name(long[:-1])
    assert job_name("a" * 64).startswith("a" * 52 + "-")


def test_owned_by_the_videojob_and_labelled(settings: OperatorSettings) -> None:
    manifest = build_job(videojob("j-1"), settings)
    meta = manifest["metadata"]
    assert (meta["name"], meta["namespace"]) == ("j-1", "jobs")
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
    assert volumes["access"]["secret"] == {"secretName": "j-1", "defaultMode": 0o440}
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # The token is mounted only for progress reports, with the job's own ServiceAccount.
    assert pod["serviceAccountName"] == "j-1"
    assert pod["automountServiceAccountToken"] is True


def test_processor_environment(settings: OperatorSettings) -> None:
    settings = OperatorSettings(
        s3_endpoint_url="http://127.0.0.1:9000",
        processor_s3_endpoint_url="http://s3.svc:9000",
        s3_bucket="out",
        s3_access_key_id="operator-key",
        s3_secret_access_key="operator-secret",
    )
    manifest = build_job(videojob("j-1"), settings)
    env = _env(manifest)
    spec = json.loads(env["VIDPIPE_JOB_SPEC"])
    assert spec["jobId"] == "j-1" and spec["outputs"]["renditions"][0]["height"] == 720
    assert "resources" not in spec  # None is omitted, not sent as null
    assert env["VIDPIPE_VIDEOJOB_NAME"] == "j-1"
    assert env["VIDPIPE_VIDEOJOB_NAMESPACE"] == "jobs"
    assert env["VIDPIPE_WORK_DIR"] == "/work"
    assert env["VIDPIPE_ACCESS_FILE"] == f"{ACCESS_MOUNT}/{ACCESS_KEY}"
    # No credentials, no endpoint, no bucket: S3 only through the presigned URLs in the mounted
    # Secret, which names the bucket too.
    assert not [name for name in env if name.startswith("AWS_") or "S3" in name]
    assert "out" not in {e.get("value") for e in _container(manifest)["env"]}
    text = json.dumps(manifest)
    assert "operator-key" not in text and "operator-secret" not in text
    assert "secretKeyRef" not in text


def test_the_media_limits_and_preset_reach_the_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if build_job drops one of the shared limits or the preset, or passes it under a name
    # the processor does not read: the processor would then apply its default instead.
    chosen = OperatorSettings(
        max_duration_seconds=90,
        max_pixels=1280 * 720,
        max_streams=3,
        probe_timeout_seconds=20,
        probe_memory_bytes=300 * 1024 * 1024,
        probe_cpu_seconds=7,
        x264_preset="slow",
    )
    for variable in _container(build_job(videojob("j-1"), chosen))["env"]:
        monkeypatch.setenv(variable["name"], variable["value"])
    processor = ProcessorSettings()
    assert processor.probe_limits == chosen.probe_limits != ProbeLimits()
    assert processor.x264_preset == "slow"


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
