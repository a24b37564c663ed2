"""Presets (issue 16): named outputs that platform teams keep as custom resources, in Git, applied
with kubectl, and that clients choose with `preset=<name>`.

Resolution order: a `VideoPreset` of that name in the API's jobs namespace first, else a
`ClusterVideoPreset`. The namespaced one wins so that one installation can override (or pin) a
cluster-wide preset without touching what other installations see.

A preset is read once, when the upload is requested (for a presigned upload: when its session
opens): its outputs are copied into the job and its VideoJob with `spec.preset` = {name, kind,
generation}. Jobs are immutable, so editing or deleting a preset later changes only the jobs
submitted after the edit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from vidpipe.constants import (
    CLUSTER_PRESET_KIND,
    CLUSTER_PRESET_PLURAL,
    GROUP,
    PRESET_KIND,
    PRESET_PLURAL,
    VERSION,
)
from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.models import Outputs, PresetRef, VideoPresetSpec
from vidpipe_api.cluster import Cluster
from vidpipe_api.errors import InvalidRequest
from vidpipe_api.options import JobOptions


class UnknownPreset(VidpipeError):
    def __init__(self, name: str) -> None:
        super().__init__(
            ErrorCode.UNKNOWN_PRESET,
            f"no preset named {name!r}: no {PRESET_KIND} in the jobs namespace and no "
            f"{CLUSTER_PRESET_KIND} has that name",
            {"preset": name},
        )


def resolve_preset(
    name: str, namespaced: dict[str, Any] | None, cluster_wide: dict[str, Any] | None
) -> tuple[Outputs, PresetRef]:
    """The outputs and the reference of preset `name`, given the objects found (None: absent)
    of each kind: the namespaced one wins."""
    for kind, found in ((PRESET_KIND, namespaced), (CLUSTER_PRESET_KIND, cluster_wide)):
        if found is None:
            continue
        try:
            spec = VideoPresetSpec.model_validate(found.get("spec") or {})
        except ValidationError as exc:
            # The CRD's schema and CEL rules are the model's twins; this is a preset stored
            # under an older schema. Its owner must fix it, the client can only pick another.
            raise InvalidRequest(
                f"{kind} {name!r} is not valid: {exc.error_count()} error(s)",
                {"field": "preset", "preset": name},
            ) from exc
        generation = int((found.get("metadata") or {}).get("generation") or 1)
        return spec.outputs, PresetRef(name=name, kind=kind, generation=generation)
    raise UnknownPreset(name)


async def _read(cluster: Cluster, plural: str, name: str, namespace: str | None) -> Any:
    """The object, or None if it (or its CRD) does not exist."""
    try:
        if namespace is None:
            return await cluster.run(
                cluster.custom.get_cluster_custom_object, GROUP, VERSION, plural, name
            )
        return await cluster.run(
            cluster.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def resolve(cluster: Cluster, options: JobOptions) -> JobOptions:
    """`options` with its `preset_name` resolved into outputs and a PresetRef (unchanged if it
    names none). Raises UnknownPreset, or ClusterUnavailable while the API server is down."""
    name = options.preset_name
    if name is None:
        return options
    namespaced = await _read(cluster, PRESET_PLURAL, name, cluster.namespace)
    cluster_wide = None
    if namespaced is None:
        cluster_wide = await _read(cluster, CLUSTER_PRESET_PLURAL, name, None)
    outputs, ref = resolve_preset(name, namespaced, cluster_wide)
    return dataclasses.replace(options, outputs=outputs, preset=ref, preset_name=None)
