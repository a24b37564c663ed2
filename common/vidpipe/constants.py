"""Names that the CRD, the operator, the API and the chart must agree on, kept in one place."""

from typing import Final

GROUP: Final = "media.vidpipe.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "VideoJob"
PLURAL: Final = "videojobs"
SINGULAR: Final = "videojob"
SHORT_NAMES: Final = ("vj",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"
# Presets (issue 16): named outputs, per namespace (the jobs namespace) or for the whole cluster.
PRESET_KIND: Final = "VideoPreset"
PRESET_PLURAL: Final = "videopresets"
PRESET_SHORT_NAMES: Final = ("vpreset",)
CLUSTER_PRESET_KIND: Final = "ClusterVideoPreset"
CLUSTER_PRESET_PLURAL: Final = "clustervideopresets"
CLUSTER_PRESET_SHORT_NAMES: Final = ("cvpreset",)

# Labels follow the recommended app.kubernetes.io/* set plus our own keys for selection.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_JOB_ID: Final = f"{GROUP}/job-id"
LABEL_OWNER: Final = f"{GROUP}/owner"
PART_OF: Final = "vidpipe"

# Field managers for server-side apply: each writer of VideoJob status owns its own fields.
FIELD_MANAGER_OPERATOR: Final = "vidpipe-operator"
FIELD_MANAGER_PROCESSOR: Final = "vidpipe-processor"

# MongoDB collection names.
JOBS_COLLECTION: Final = "jobs"
