"""Least privilege for one processor Pod: what it may read, write and patch, and nothing more.

A processor runs hostile media through ffmpeg, so its Pod is treated as compromised-on-arrival:
- S3: it holds no keys. The operator (which has keys) presigns one GET URL for the job's source
  and one PUT URL per output the job can produce (every rendition named in spec.outputs in each
  selected format, the HLS playlists, poster, storyboard, metadata.json, manifest.json). The URLs
  live in a per-job Secret mounted into the Pod, never in the Job spec, the environment or a log.
  A URL names one object and one method, so the Pod cannot read another job's source, list the
  bucket, delete, or write outside its prefix.
- Kubernetes: a per-job ServiceAccount whose Role allows get/patch of `videojobs/status` for that
  one VideoJob (resourceNames), so a stolen token cannot touch another job's progress.

Every object here is owned by the VideoJob, so deleting the VideoJob garbage-collects them. The
builders are pure (unit-tested without a cluster); `reconcile` creates them before the Job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from vidpipe import constants, keys
from vidpipe.models import VideoJobSpec
from vidpipe_operator.jobspec import ACCESS_KEY, job_labels, job_name, owner_reference
from vidpipe_operator.settings import OperatorSettings

# A SigV4 presigned URL is valid for at most 7 days (X-Amz-Expires <= 604800).
SIGV4_MAX_SECONDS = 7 * 24 * 3600

Body = dict[str, Any]
# (HTTP method, bucket, key, seconds) -> URL
Presign = Callable[[str, str, str, int], str]


def access_name(videojob_name: str) -> str:
    """Name of the per-job Secret, ServiceAccount, Role and RoleBinding (same as the Job's)."""
    return job_name(videojob_name)


def output_names(spec: VideoJobSpec) -> list[str]:
    """Every file name the processor may write for `spec`: a superset of what the plan makes
    (a rendition that would upscale is dropped by the processor, never renamed; the audio
    playlist is not written for a silent source)."""
    renditions = [r.name for r in spec.outputs.renditions]
    names: list[str] = []
    if "mp4" in spec.outputs.formats:
        names += [keys.rendition_file_name(r) for r in renditions]
    if "hls" in spec.outputs.formats:
        names += keys.hls_file_names(renditions, audio=True)
    if spec.outputs.poster:
        names.append(keys.POSTER_NAME)
    if spec.outputs.storyboard.enabled:
        names += [keys.STORYBOARD_IMAGE_NAME, keys.STORYBOARD_VTT_NAME]
    names += [keys.METADATA_NAME, keys.MANIFEST_NAME]
    return list(dict.fromkeys(names))


def _needed(spec: VideoJobSpec, settings: OperatorSettings) -> int:
    """Seconds a Pod may need its URLs from the moment it starts: its deadline plus a margin."""
    deadline = spec.active_deadline_seconds or settings.default_active_deadline_seconds
    return deadline + settings.presign_margin_seconds


def url_lifetime(spec: VideoJobSpec, settings: OperatorSettings) -> int:
    """Seconds the URLs stay valid, capped by SigV4.

    Builtin mode: the deadline plus a margin. The Secret is written just before the Job, which
    starts at once, so the Job cannot outlive its URLs unless its deadline exceeds the cap
    (documented in docs/operator.md). Kueue mode: the cap. The Job waits in its queue (again
    after each preemption) for as long as Kueue decides, and `access_expiring` renews the URLs
    of a Job that has waited so long that they would not last its run.
    """
    if settings.queueing_mode == "kueue":
        return SIGV4_MAX_SECONDS
    return min(_needed(spec, settings), SIGV4_MAX_SECONDS)


def access_expiring(
    spec: VideoJobSpec, settings: OperatorSettings, job_created: datetime, at: datetime
) -> bool:
    """Whether a waiting Job's URLs, written when it was created, may run out before a Pod
    admitted now finishes. From then on every reconcile of the waiting job renews them (the
    Job's age is all that is known without reading the Secret back): once a minute at most (the
    resync), and only for a job that has waited days."""
    written_for = url_lifetime(spec, settings) - _needed(spec, settings)
    return (at - job_created).total_seconds() >= written_for


def access_document(
    spec: VideoJobSpec, bucket: str, presign: Presign, seconds: int, now: datetime
) -> Body:
    """The Secret's content: one URL per object, each bound to its method and key."""
    source = spec.source
    outputs = {}
    for name in output_names(spec):
        key = keys.output_key(spec.job_id, name)
        outputs[name] = {"key": key, "url": presign("PUT", bucket, key, seconds)}
    return {
        "version": keys.ACCESS_DOCUMENT_VERSION,
        "jobId": spec.job_id,
        "expiresAt": (now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": {
            "bucket": source.bucket,
            "key": source.key,
            "url": presign("GET", source.bucket, source.key, seconds),
        },
        "outputBucket": bucket,
        "outputs": outputs,
    }


def _metadata(videojob: Body) -> Body:
    meta = videojob["metadata"]
    spec = VideoJobSpec.model_validate(videojob["spec"])
    return {
        "name": access_name(meta["name"]),
        "namespace": meta["namespace"],
        "labels": job_labels(meta["name"], spec),
        "ownerReferences": [owner_reference(videojob)],
    }


def build_access_secret(videojob: Body, document: Body) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(videojob),
        "type": "Opaque",
        # Immutable would save the kubelet's watch, but a Job re-created after its URLs expired
        # needs the same Secret with fresh ones (see Kube.put_secret).
        "stringData": {ACCESS_KEY: json.dumps(document, separators=(",", ":"))},
    }


def build_service_account(videojob: Body) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(videojob),
        # Only the Job's Pod mounts its token (it opts in); nothing else running as it gets one.
        "automountServiceAccountToken": False,
    }


def build_role(videojob: Body) -> Body:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(videojob),
        "rules": [
            {
                "apiGroups": [constants.GROUP],
                "resources": [f"{constants.PLURAL}/status"],
                "resourceNames": [videojob["metadata"]["name"]],
                # Server-side apply of status.progress is a patch; get is what apply may read.
                "verbs": ["get", "patch"],
            }
        ],
    }


def build_role_binding(videojob: Body) -> Body:
    meta = _metadata(videojob)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
        "subjects": [
            {"kind": "ServiceAccount", "name": meta["name"], "namespace": meta["namespace"]}
        ],
    }
