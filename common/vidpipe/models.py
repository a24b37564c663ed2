"""Pydantic models of the VideoJob resource: the single source of its schema.

`crds/` is generated from these models (`make manifests`, see `vidpipe.crd`), the API builds specs
with them and the processor parses its request with them, so a field means the same thing
everywhere. Descriptions here become `kubectl explain videojob.spec...` text.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vidpipe.keys import HLS_RESERVED_NAMES
from vidpipe.phases import Phase

JOB_ID_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# S3 bucket naming rules (lowercase, digits, dots, hyphens; 3-63 chars; alphanumeric ends).
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
RENDITION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"

# Messages of the CRD's CEL rules (vidpipe.crd.SPEC_RULES). Each rule has a twin check here that
# refuses the same input with the same message, so the API answers 422 before storing anything
# instead of learning it from the API server (tests/unit/common/test_cel_twins.py proves it).
IMMUTABLE = "is immutable; create a new VideoJob instead"
SPEC_IMMUTABLE = "spec is immutable except spec.cancel"
UNIQUE_RENDITION_NAMES = "rendition names must be unique"
UNIQUE_FORMATS = "formats must be unique"
RESERVED_RENDITION_NAMES = "rendition names audio and master are reserved (HLS playlists)"
RESOURCES_NEED_ONE = "resources needs cpu or memory (omit it for the defaults)"
CANCEL_IS_ONE_WAY = "cancel cannot be undone"
# A VideoJob's name is its Job's name, which the Job controller puts in a label on every Pod, and
# label values hold at most 63 characters. The API names a VideoJob after its job id, whose own
# limit (below) is the twin of this rule.
MAX_NAME_LENGTH = 63
NAME_TOO_LONG = f"metadata.name must be at most {MAX_NAME_LENGTH} characters: it names the Job"
# Fields that can never change after creation, by their camelCase name.
IMMUTABLE_FIELDS = (
    "jobId",
    "owner",
    "source",
    "outputs",
    "activeDeadlineSeconds",
    "resources",
    "userMetadata",
    "priority",
    "preset",
)
# Optional fields among them: present at creation or never (the SPEC_IMMUTABLE rule).
OPTIONAL_IMMUTABLE_FIELDS = ("resources", "activeDeadlineSeconds", "preset")
# A preset's name is a Kubernetes object name (DNS subdomain).
PRESET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
# The client's metadata: a small free-form map attached at upload and echoed in the job and in
# every event (webhook payloads stay far below the 20 kB the dispatcher allows).
METADATA_MAX_KEYS = 16
METADATA_MAX_KEY_LENGTH = 64
METADATA_MAX_VALUE_LENGTH = 512


class Priority(StrEnum):
    """How urgent a job is: the built-in queue runs an owner's higher-priority jobs first, and in
    Kueue mode it names the job's WorkloadPriorityClass. Never an owner's ticket past another
    owner: fairness between owners comes first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """Higher runs first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2}


class _Model(BaseModel):
    # Kubernetes objects use camelCase; reject unknown fields so typos fail loudly.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SourceObject(_Model):
    """Where the uploaded source video is stored."""

    bucket: Annotated[
        str,
        Field(min_length=3, max_length=63, pattern=BUCKET_PATTERN, description="S3 bucket"),
    ]
    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            # A leading slash would address a different object on some S3 servers.
            pattern=r"^[^/]",
            description="S3 object key of the source video",
        ),
    ]


class Rendition(_Model):
    """One output MP4 (H.264 + AAC). Never upscaled: heights above the source are skipped."""

    name: Annotated[
        str,
        Field(
            pattern=RENDITION_NAME_PATTERN,
            max_length=32,
            description="Output name, e.g. 720p; the file is <name>.mp4",
        ),
    ]
    height: Annotated[int, Field(ge=144, le=4320, description="Target height in pixels")]
    video_bitrate_kbps: Annotated[
        int | None,
        Field(
            default=None,
            alias="videoBitrateKbps",
            ge=100,
            le=100_000,
            description="Target video bitrate; CRF quality mode when omitted",
        ),
    ] = None
    audio_bitrate_kbps: Annotated[
        int,
        Field(default=128, alias="audioBitrateKbps", ge=32, le=512, description="AAC bitrate"),
    ] = 128


class Storyboard(_Model):
    """A sprite grid of small frames plus a WebVTT index, for scrub previews in players."""

    enabled: Annotated[bool, Field(default=True, description="Produce the storyboard")] = True
    interval_seconds: Annotated[
        float,
        Field(
            default=10.0,
            alias="intervalSeconds",
            ge=0.5,
            le=600,
            description="Seconds between frames",
        ),
    ] = 10.0
    tile_width: Annotated[
        int, Field(default=160, alias="tileWidth", ge=32, le=640, description="Tile width, px")
    ] = 160
    columns: Annotated[int, Field(default=10, ge=1, le=20, description="Tiles per row")] = 10


def _default_renditions() -> list[Rendition]:
    return [Rendition(name="720p", height=720)]


# Packagings of the renditions: `mp4` one progressive file each, `hls` an HLS/CMAF ladder
# (docs/processor.md). Both come from the same encode of each rendition.
OutputFormat = Literal["hls", "mp4"]


def _default_formats() -> list[OutputFormat]:
    return ["hls", "mp4"]


class Outputs(_Model):
    """What to produce from the source."""

    # `= Field(default_factory=...)` rather than Annotated so mypy's pydantic plugin sees a default.
    renditions: list[Rendition] = Field(
        default_factory=_default_renditions,
        min_length=1,
        max_length=8,
        description="Renditions to encode from one decode of the source",
    )
    container: Annotated[Literal["mp4"], Field(default="mp4", description="Output container")] = (
        "mp4"
    )
    poster: Annotated[bool, Field(default=True, description="Produce poster.jpg")] = True
    storyboard: Storyboard = Field(
        default_factory=Storyboard, description="Scrub-preview sprite sheet"
    )
    audio_track: Annotated[
        int, Field(default=0, alias="audioTrack", ge=0, le=31, description="Audio stream index")
    ] = 0
    formats: list[OutputFormat] = Field(
        default_factory=_default_formats,
        min_length=1,
        max_length=2,
        description="Packagings of the renditions: hls (HLS/CMAF ladder), mp4 (one file each)",
    )

    @field_validator("renditions")
    @classmethod
    def _unique_names(cls, renditions: list[Rendition]) -> list[Rendition]:
        names = [r.name for r in renditions]
        if len(set(names)) != len(names):
            raise ValueError(UNIQUE_RENDITION_NAMES)
        # audio.m3u8 and master.m3u8 sit beside the renditions' playlists.
        if set(HLS_RESERVED_NAMES) & set(names):
            raise ValueError(RESERVED_RENDITION_NAMES)
        return renditions

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, formats: list[OutputFormat]) -> list[OutputFormat]:
        if len(set(formats)) != len(formats):
            raise ValueError(UNIQUE_FORMATS)
        return formats


class PresetRef(_Model):
    """The preset a VideoJob's outputs were copied from, as it was then: later edits of the
    preset never change the job (its outputs are the copy)."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=253, pattern=PRESET_NAME_PATTERN, description="Its name"),
    ]
    kind: Annotated[
        Literal["VideoPreset", "ClusterVideoPreset"],
        Field(description="VideoPreset (the jobs namespace) or ClusterVideoPreset"),
    ]
    generation: Annotated[
        int, Field(ge=1, description="The preset's metadata.generation when it was copied")
    ]


class VideoPresetSpec(_Model):
    """Named outputs that clients choose with `preset=<name>` instead of listing them."""

    description: Annotated[
        str | None, Field(default=None, max_length=256, description="What the preset is for")
    ] = None
    outputs: Outputs = Field(default_factory=Outputs, description="What to produce from the source")


class JobResources(_Model):
    """Compute for the processor Pod; defaults come from operator settings."""

    cpu: Annotated[
        str | None,
        Field(
            default=None,
            max_length=16,
            pattern=r"^[0-9]+(\.[0-9]+)?m?$",
            description="CPU request and limit, e.g. 500m or 2",
        ),
    ] = None
    memory: Annotated[
        str | None,
        Field(
            default=None,
            max_length=16,
            pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$",
            description="Memory request and limit, e.g. 1Gi",
        ),
    ] = None

    @model_validator(mode="after")
    def _one_of_them(self) -> JobResources:
        if self.cpu is None and self.memory is None:
            raise ValueError(RESOURCES_NEED_ONE)
        return self


class VideoJobSpec(_Model):
    """Desired state: immutable after creation except `cancel`."""

    job_id: Annotated[
        str,
        Field(
            alias="jobId",
            pattern=JOB_ID_PATTERN,
            max_length=MAX_NAME_LENGTH,
            description="Job id chosen by the API; the MongoDB _id and the S3 key prefix",
        ),
    ]
    owner: Annotated[str, Field(min_length=1, max_length=128, description="Who submitted the job")]
    source: Annotated[SourceObject, Field(description="The stored source video")]
    outputs: Outputs = Field(default_factory=Outputs, description="What to produce from the source")
    resources: Annotated[
        JobResources | None,
        Field(default=None, description="Processor compute; operator defaults when omitted"),
    ] = None
    active_deadline_seconds: Annotated[
        int | None,
        Field(
            default=None,
            alias="activeDeadlineSeconds",
            ge=30,
            le=86_400,
            description="Wall-clock limit for all attempts together",
        ),
    ] = None
    cancel: Annotated[
        bool,
        Field(default=False, description="Set to true to cancel; cannot be set back to false"),
    ] = False
    user_metadata: dict[str, Annotated[str, Field(max_length=METADATA_MAX_VALUE_LENGTH)]] = Field(
        default_factory=dict,
        alias="userMetadata",
        max_length=METADATA_MAX_KEYS,
        description="The client's own key/value pairs, echoed in the job and in every event",
    )
    priority: Annotated[
        Priority,
        Field(
            default=Priority.NORMAL,
            description="low, normal or high: the order of this owner's jobs in the queue",
        ),
    ] = Priority.NORMAL
    preset: Annotated[
        PresetRef | None,
        Field(default=None, description="The preset the outputs were copied from, if any"),
    ] = None


def spec_update_violations(old: VideoJobSpec, new: VideoJobSpec) -> list[str]:
    """The twin of the CRD's transition rules: why updating `old` to `new` would be refused."""
    before = old.model_dump(by_alias=True, exclude_none=True)
    after = new.model_dump(by_alias=True, exclude_none=True)
    problems: list[str] = []
    if any((name in before) != (name in after) for name in OPTIONAL_IMMUTABLE_FIELDS):
        problems.append(SPEC_IMMUTABLE)
    for name in IMMUTABLE_FIELDS:
        if name in before and name in after and before[name] != after[name]:
            problems.append(f"{name} {IMMUTABLE}")
    if old.cancel and not new.cancel:
        problems.append(CANCEL_IS_ONE_WAY)
    return problems


class Condition(_Model):
    """Standard Kubernetes condition shape (metav1.Condition)."""

    type: Annotated[str, Field(description="Condition type, e.g. Admitted, Running, Complete")]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(description="CamelCase machine-readable reason")]
    message: Annotated[str, Field(default="", description="Human-readable detail")] = ""
    last_transition_time: datetime = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class JobError(_Model):
    """Why a job failed: a code from the error catalogue and a human message."""

    code: Annotated[str, Field(description="Machine-readable code (vidpipe.errors.ErrorCode)")]
    message: Annotated[str, Field(description="Human-readable reason")]


class VideoJobStatus(_Model):
    """Observed state, written by the operator (and `progress` by the processor)."""

    phase: Annotated[
        Phase, Field(default=Phase.PENDING, description="Pending, Running or a terminal phase")
    ] = Phase.PENDING
    progress: Annotated[
        int, Field(default=0, ge=0, le=100, description="Percent done, reported by the processor")
    ] = 0
    conditions: list[Condition] = Field(default_factory=list)
    attempts: Annotated[
        int, Field(default=0, ge=0, description="Processor Pods started so far")
    ] = 0
    started_at: datetime | None = Field(default=None, alias="startedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    duration: Annotated[
        str | None, Field(default=None, description="Wall time from start to finish, e.g. 1m5s")
    ] = None
    job_name: str | None = Field(default=None, alias="jobName")
    # Kueue mode (docs/queueing.md): where a Queued job waits, and how many wait ahead of it.
    queue: Annotated[
        str | None, Field(default=None, description="Kueue LocalQueue the job's Job is queued in")
    ] = None
    queue_position: Annotated[
        int | None,
        Field(
            default=None,
            alias="queuePosition",
            ge=1,
            description="Place among the Workloads waiting in its ClusterQueue, 1 = next",
        ),
    ] = None
    evicted_pods: Annotated[
        int | None,
        Field(
            default=None,
            alias="evictedPods",
            ge=0,
            description="Kueue mode: Pods stopped by evictions (preemption), not attempts",
        ),
    ] = None
    outputs: list[str] = Field(default_factory=list, description="S3 keys of the produced outputs")
    error: JobError | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
