"""Everything the processor is told, from environment variables (the operator fills them in).

One pydantic-settings class with the `VIDPIPE_` prefix; docs/processor.md documents every
variable. The media limits and the x264 preset are the shared ones (vidpipe.settings), which the
operator passes on from its own settings. There are no S3 settings: S3 is reached only through the
presigned URLs in the access file (the per-job Secret the operator mounts), which also names the
bucket; see storage.py.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from vidpipe.models import VideoJobSpec
from vidpipe.settings import EncodeSettings, MediaLimitSettings
from vidpipe_processor.plan import HLS_SEGMENT_SECONDS
from vidpipe_processor.reporter import SERVICE_ACCOUNT_DIR
from vidpipe_processor.storage import TransferConfig


class ProcessorSettings(MediaLimitSettings, EncodeSettings):
    model_config = SettingsConfigDict(env_prefix="VIDPIPE_", extra="ignore", frozen=True)

    # The VideoJob spec as JSON (camelCase, exactly as in the resource).
    job_spec: VideoJobSpec
    # The presigned URLs (JSON written by the operator into the job's Secret).
    access_file: Path = Path("/var/run/secrets/vidpipe.io/access/access.json")
    s3_max_attempts: int = Field(default=10, ge=1, le=50)
    # Outputs uploaded at once (one streamed PUT each).
    s3_max_concurrency: int = Field(default=8, ge=1, le=64)

    # An emptyDir in the Pod: the only place the processor writes (read-only root filesystem).
    work_dir: Path = Path("/work")

    ffmpeg_path: str = "ffmpeg"
    ffprobe_path: str = "ffprobe"
    # HLS segment length (keyframes every half of it); Apple's guide asks for at most 6 s.
    hls_segment_seconds: int = Field(default=HLS_SEGMENT_SECONDS, ge=1, le=10)

    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    # Progress to the VideoJob status: only when both are set (the operator sets them).
    videojob_name: str | None = None
    videojob_namespace: str | None = None
    # In a Pod the API server comes from KUBERNETES_SERVICE_HOST/PORT; this overrides it.
    kubernetes_api_url: str | None = None
    kubernetes_service_host: str | None = Field(
        default=None, validation_alias="KUBERNETES_SERVICE_HOST"
    )
    kubernetes_service_port: int = Field(default=443, validation_alias="KUBERNETES_SERVICE_PORT")
    kubernetes_token_path: Path = SERVICE_ACCOUNT_DIR / "token"
    kubernetes_ca_path: Path = SERVICE_ACCOUNT_DIR / "ca.crt"
    progress_interval_seconds: float = Field(default=2.0, ge=0)

    @field_validator(
        "videojob_name",
        "videojob_namespace",
        "kubernetes_api_url",
        "kubernetes_service_host",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Templates often render an unset value as an empty string; mean "unset" by it.
        return None if value == "" else value

    @property
    def transfer(self) -> TransferConfig:
        return TransferConfig(
            max_attempts=self.s3_max_attempts, max_concurrency=self.s3_max_concurrency
        )

    def kubernetes_url(self) -> str | None:
        """The API server URL if progress should go to the VideoJob, else None."""
        if not (self.videojob_name and self.videojob_namespace):
            return None
        if self.kubernetes_api_url:
            return self.kubernetes_api_url
        if not self.kubernetes_service_host:
            return None
        host = self.kubernetes_service_host
        host = f"[{host}]" if ":" in host else host  # IPv6 cluster
        return f"https://{host}:{self.kubernetes_service_port}"
