"""Pure builder of the batch/v1 Job that runs the processor for one VideoJob.

Everything the Job needs is derived from the VideoJob and the settings, so the manifest can be
unit-tested without a cluster and rebuilt identically after an operator restart.
"""

from __future__ import annotations

import hashlib
from typing import Any

from vidpipe import constants, exitcodes
from vidpipe.models import MAX_NAME_LENGTH, VideoJobSpec
from vidpipe.settings import env_name
from vidpipe_operator.kueue import job_labels as kueue_labels
from vidpipe_operator.names import CONTAINER, LABEL_VIDEOJOB, MANAGED_BY
from vidpipe_operator.settings import OperatorSettings

WORK_DIR = "/work"
# The per-job Secret (see access.py) is mounted here; its one key holds the presigned URLs.
ACCESS_KEY = "access.json"
ACCESS_MOUNT = "/var/run/secrets/vidpipe.io/access"


def job_name(videojob_name: str) -> str:
    """The Job's name: the VideoJob's own, so `kubectl get job NAME` finds it (409 = exists).

    The Job name becomes a label value on its Pods, at most 63 characters; the CRD refuses longer
    VideoJob names (MAX_NAME_LENGTH). One created before that rule (0.2.0) keeps its first 52
    characters plus a hash of the whole name, so it still maps to one Job of its own.
    """
    if len(videojob_name) <= MAX_NAME_LENGTH:
        return videojob_name
    digest = hashlib.sha256(videojob_name.encode()).hexdigest()[:10]
    return f"{videojob_name[: MAX_NAME_LENGTH - 11].rstrip('-.')}-{digest}"


def job_labels(videojob_name: str, spec: VideoJobSpec) -> dict[str, str]:
    return {
        constants.LABEL_NAME: "vidpipe-processor",
        constants.LABEL_COMPONENT: "processor",
        constants.LABEL_PART_OF: constants.PART_OF,
        constants.LABEL_MANAGED_BY: MANAGED_BY,
        constants.LABEL_JOB_ID: spec.job_id,
        LABEL_VIDEOJOB: job_name(videojob_name),
    }


def _env(videojob: dict[str, Any], spec: VideoJobSpec, settings: OperatorSettings) -> list[Any]:
    meta = videojob["metadata"]
    # No S3 setting at all: the processor reaches S3 only through the presigned URLs in its
    # Secret (a file, so they are in no environment a child process or a dump could see), which
    # also names the bucket. The media limits and the preset are the operator's own, passed on
    # under their shared names, so the chart's values reach the processor too.
    return [
        {
            "name": "VIDPIPE_JOB_SPEC",
            "value": spec.model_dump_json(by_alias=True, exclude_none=True),
        },
        {"name": "VIDPIPE_VIDEOJOB_NAME", "value": meta["name"]},
        {"name": "VIDPIPE_VIDEOJOB_NAMESPACE", "value": meta["namespace"]},
        {"name": "VIDPIPE_WORK_DIR", "value": WORK_DIR},
        {"name": "VIDPIPE_ACCESS_FILE", "value": f"{ACCESS_MOUNT}/{ACCESS_KEY}"},
        *settings.limits_env(),
        {"name": env_name("x264_preset"), "value": settings.x264_preset},
    ]


def owner_reference(videojob: dict[str, Any]) -> dict[str, Any]:
    """Controller reference to the VideoJob: deleting it garbage-collects what it owns."""
    meta = videojob["metadata"]
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _resources(spec: VideoJobSpec, settings: OperatorSettings) -> dict[str, Any]:
    # A per-job value is both request and limit: the caller asked for exactly that much.
    cpu_req, cpu_lim = settings.processor_cpu_request, settings.processor_cpu_limit
    mem_req, mem_lim = settings.processor_memory_request, settings.processor_memory_limit
    if spec.resources and spec.resources.cpu:
        cpu_req = cpu_lim = spec.resources.cpu
    if spec.resources and spec.resources.memory:
        mem_req = mem_lim = spec.resources.memory
    return {
        "requests": {"cpu": cpu_req, "memory": mem_req},
        "limits": {"cpu": cpu_lim, "memory": mem_lim},
    }


def build_job(videojob: dict[str, Any], settings: OperatorSettings) -> dict[str, Any]:
    """The Job manifest for `videojob` (a VideoJob body as the API server returns it)."""
    meta = videojob["metadata"]
    spec = VideoJobSpec.model_validate(videojob["spec"])
    labels = job_labels(meta["name"], spec)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.processor_image,
        "imagePullPolicy": settings.processor_image_pull_policy,
        "env": _env(videojob, spec, settings),
        "resources": _resources(spec, settings),
        # The processor writes {"code","message"} to /dev/termination-log; if it dies before
        # that, the log tail is still better than nothing in status.error.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "work", "mountPath": WORK_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "access", "mountPath": ACCESS_MOUNT, "readOnly": True},
        ],
    }
    if settings.processor_command is not None:
        container["command"] = list(settings.processor_command)
    if settings.processor_args is not None:
        container["args"] = list(settings.processor_args)
    pod: dict[str, Any] = {
        # podFailurePolicy requires Never: the Job controller, not the kubelet, decides
        # about retries.
        "restartPolicy": "Never",
        # The processor reports progress itself by server-side apply of status.progress on
        # its VideoJob. Its ServiceAccount is its own (access.py): the Role allows get/patch of
        # videojobs/status for this one VideoJob. That is the only reason the token is mounted:
        # progress then needs no sidecar, no extra hop through the operator, and a stolen token
        # cannot touch another job.
        "serviceAccountName": job_name(meta["name"]),
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.processor_uid,
            "runAsGroup": settings.processor_uid,
            "fsGroup": settings.processor_uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "work", "emptyDir": {"sizeLimit": settings.processor_work_dir_size}},
            {"name": "tmp", "emptyDir": {"sizeLimit": settings.processor_tmp_size}},
            # Readable by the processor's group only (fsGroup); the Pod waits for the Secret.
            {
                "name": "access",
                "secret": {"secretName": job_name(meta["name"]), "defaultMode": 0o440},
            },
        ],
    }
    if settings.processor_node_selector:
        pod["nodeSelector"] = dict(settings.processor_node_selector)
    if settings.processor_tolerations:
        pod["tolerations"] = [dict(t) for t in settings.processor_tolerations]
    # Kueue mode: the Job itself carries its LocalQueue and priority class (not its Pods); it is
    # created unsuspended and Kueue's webhook suspends it until admitted (kueue.py).
    job_meta_labels = (
        {**labels, **kueue_labels(videojob["spec"], settings)}
        if settings.queueing_mode == "kueue"
        else labels
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": job_meta_labels,
            # Owned by the VideoJob: deleting it garbage-collects the Job and its Pods.
            "ownerReferences": [owner_reference(videojob)],
        },
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "activeDeadlineSeconds": (
                spec.active_deadline_seconds or settings.default_active_deadline_seconds
            ),
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # A bad input will be just as bad on the next try: fail the Job at once.
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [exitcodes.BAD_INPUT],
                        },
                    },
                    # Eviction, preemption and node loss are not the job's fault: retry without
                    # spending the backoff budget.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
