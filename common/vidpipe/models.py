"""Pydantic models of the VideoJob resource: the single source of its schema.

`crds/` is generated from these models (`make manifests`), the API builds specs with them and the
processor parses its request with them, so a field means the same thing everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from vidpipe.phases import Phase

JOB_ID_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class _Model(BaseModel):
    # Kubernetes objects use camelCase; reject unknown fields so typos fail loudly.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SourceObject(_Model):
    """Where the uploaded source video is stored."""

    bucket: Annotated[str, Field(min_length=3, max_length=63, description="S3 bucket")]
    key: Annotated[str, Field(min_length=1, max_length=1024, description="S3 object key")]


class Rendition(_Model):
    """One output MP4 (H.264 + AAC). Never upscaled: heights above the source are skipped."""

    name: Annotated[
        str,
        Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Output name, e.g. 720p"),
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

    enabled: bool = True
    interval_seconds: Annotated[
        float, Field(default=10.0, alias="intervalSeconds", ge=0.5, le=600)
    ] = 10.0
    tile_width: Annotated[int, Field(default=160, alias="tileWidth", ge=32, le=640)] = 160
    columns: Annotated[int, Field(default=10, ge=1, le=20)] = 10


def _default_renditions() -> list[Rendition]:
    return [Rendition(name="720p", height=720)]


class Outputs(_Model):
    """What to produce from the source."""

    renditions: list[Rendition] = Field(
        default_factory=_default_renditions, min_length=1, max_length=8
    )
    container: Literal["mp4"] = "mp4"
    poster: bool = True
    storyboard: Storyboard = Field(default_factory=Storyboard)
    audio_track: Annotated[
        int, Field(default=0, alias="audioTrack", ge=0, le=31, description="Audio stream index")
    ] = 0


class JobResources(_Model):
    """Compute for the processor Pod; defaults come from operator settings."""

    cpu: Annotated[str | None, Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?m?$")] = None
    memory: Annotated[
        str | None, Field(default=None, pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    ] = None


class VideoJobSpec(_Model):
    """Desired state: immutable after creation except `cancel`."""

    job_id: Annotated[str, Field(alias="jobId", pattern=JOB_ID_PATTERN, max_length=63)]
    owner: Annotated[str, Field(min_length=1, max_length=128)]
    source: SourceObject
    outputs: Outputs = Field(default_factory=Outputs)
    resources: JobResources | None = None
    active_deadline_seconds: Annotated[
        int | None, Field(default=None, alias="activeDeadlineSeconds", ge=30, le=86_400)
    ] = None
    cancel: bool = False


class Condition(_Model):
    """Standard Kubernetes condition shape (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime = Field(alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class JobError(_Model):
    code: str
    message: str


class VideoJobStatus(_Model):
    """Observed state, written by the operator (and `progress` by the processor)."""

    phase: Phase = Phase.PENDING
    progress: Annotated[int, Field(default=0, ge=0, le=100)] = 0
    conditions: list[Condition] = Field(default_factory=list)
    attempts: int = 0
    started_at: datetime | None = Field(default=None, alias="startedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    job_name: str | None = Field(default=None, alias="jobName")
    outputs: list[str] = Field(default_factory=list)
    error: JobError | None = None
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
