"""The settings the components share: one environment variable and one default per fact.

The S3 bucket, endpoint, region and keys, the MongoDB URL and database, the media limits and the
x264 preset mean the same thing to the API, the operator and the processor. Each is declared once
here, in a group that a component's settings class inherits. Their variables are `VIDPIPE_` plus
the field name, with no component in it, so the chart renders one block for every component and
the operator hands the same names on to the processor's Job.

Until 0.3.0 every component had its own names (`VIDPIPE_API_S3_BUCKET`,
`VIDPIPE_OPERATOR_OUTPUT_BUCKET`, ...). Those are still read when the new name is unset, so a 0.2.0
deployment's values keep working; the new name wins when both are set. Exit: 0.4.0 stops reading
them (docs/upgrading.md).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vidpipe.probe import ProbeLimits
from vidpipe.sandbox import MiB

PREFIX: Final = "VIDPIPE_"

# The 0.2.0 variables of each shared fact, read after the new name (see the module docstring).
LEGACY_ENV: Final[dict[str, tuple[str, ...]]] = {
    "s3_bucket": ("VIDPIPE_API_S3_BUCKET", "VIDPIPE_OPERATOR_OUTPUT_BUCKET"),
    "s3_endpoint_url": ("VIDPIPE_API_S3_ENDPOINT_URL", "VIDPIPE_OPERATOR_S3_ENDPOINT_URL"),
    "s3_region": ("VIDPIPE_API_S3_REGION", "VIDPIPE_OPERATOR_AWS_REGION"),
    "s3_access_key_id": ("VIDPIPE_API_S3_ACCESS_KEY", "VIDPIPE_OPERATOR_S3_ACCESS_KEY_ID"),
    "s3_secret_access_key": ("VIDPIPE_API_S3_SECRET_KEY", "VIDPIPE_OPERATOR_S3_SECRET_ACCESS_KEY"),
    "mongo_url": ("VIDPIPE_API_MONGO_URL", "VIDPIPE_OPERATOR_MONGO_URL"),
    "mongo_database": ("VIDPIPE_API_MONGO_DATABASE", "VIDPIPE_OPERATOR_MONGO_DATABASE"),
    "max_duration_seconds": ("VIDPIPE_API_MAX_DURATION_SECONDS",),
    "max_pixels": ("VIDPIPE_API_MAX_PIXELS",),
    "max_streams": ("VIDPIPE_API_MAX_STREAMS",),
    "probe_timeout_seconds": ("VIDPIPE_API_PROBE_TIMEOUT_SECONDS",),
    "probe_memory_bytes": ("VIDPIPE_API_PROBE_MEMORY_BYTES",),
    "probe_cpu_seconds": ("VIDPIPE_API_PROBE_CPU_SECONDS",),
}

X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
# x264's speed/size trade-off; the one default of the processor, the operator and the chart.
X264_PRESET: Final[X264Preset] = "veryfast"

# Values copied from examples and tutorials; refusing them stops a demo secret reaching production.
_PLACEHOLDERS: Final = frozenset(
    {"changeme", "change-me", "secret", "password", "minioadmin", "admin", "example", "xxx", "todo"}
)
_LIMITS: Final = ProbeLimits()  # the one home of the limits' defaults


def env_name(field: str) -> str:
    """The environment variable of a shared field, e.g. `VIDPIPE_S3_BUCKET`."""
    return PREFIX + field.upper()


def _env(field: str) -> AliasChoices:
    return AliasChoices(env_name(field), *LEGACY_ENV.get(field, ()))


def _refuse_placeholder(value: SecretStr) -> SecretStr:
    secret = value.get_secret_value().lower()
    if secret in _PLACEHOLDERS or any(f":{p}@" in secret for p in _PLACEHOLDERS):
        raise ValueError("placeholder secret refused; configure a real credential")
    return value


class Shared(BaseSettings):
    # populate_by_name: tests and tools build settings from field names (`s3_bucket=...`).
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")


class S3Settings(Shared):
    """Object storage: one bucket holds every job's source and outputs."""

    s3_bucket: str = Field(
        default="vidpipe-media", min_length=3, max_length=63, validation_alias=_env("s3_bucket")
    )
    # None: AWS S3.
    s3_endpoint_url: str | None = Field(default=None, validation_alias=_env("s3_endpoint_url"))
    s3_region: str = Field(default="us-east-1", validation_alias=_env("s3_region"))
    # None falls back to boto3's chain (env, IRSA...).
    s3_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=_env("s3_access_key_id")
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=_env("s3_secret_access_key")
    )

    def s3_credentials(self) -> tuple[str | None, str | None]:
        """The key pair as boto3 takes it; (None, None) lets boto3 find its own."""
        key_id, secret = self.s3_access_key_id, self.s3_secret_access_key
        return (
            key_id.get_secret_value() if key_id else None,
            secret.get_secret_value() if secret else None,
        )

    @field_validator("s3_access_key_id", "s3_secret_access_key")
    @classmethod
    def _no_placeholder_keys(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _refuse_placeholder(value)

    @field_validator("s3_endpoint_url", mode="before")
    @classmethod
    def _empty_endpoint_is_aws(cls, value: object) -> object:
        return None if value == "" else value


class MongoSettings(Shared):
    """The MongoDB holding the job records (a secret URL: it may carry a password)."""

    mongo_url: SecretStr = Field(
        default=SecretStr("mongodb://localhost:27017/"), validation_alias=_env("mongo_url")
    )
    mongo_database: str = Field(default="vidpipe", validation_alias=_env("mongo_database"))

    @field_validator("mongo_url")
    @classmethod
    def _real_mongodb_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("mongo_url must be a mongodb:// or mongodb+srv:// URL")
        return _refuse_placeholder(value)


class MediaLimitSettings(Shared):
    """What the platform accepts: the API refuses an upload past these, the processor again."""

    max_duration_seconds: float = Field(
        default=_LIMITS.max_duration_seconds, gt=0, validation_alias=_env("max_duration_seconds")
    )
    max_pixels: int = Field(default=_LIMITS.max_pixels, gt=0, validation_alias=_env("max_pixels"))
    max_streams: int = Field(
        default=_LIMITS.max_streams, ge=1, validation_alias=_env("max_streams")
    )
    probe_timeout_seconds: float = Field(
        default=_LIMITS.timeout_seconds, gt=0, validation_alias=_env("probe_timeout_seconds")
    )
    # ffprobe's sandbox (address space and CPU time); see vidpipe.probe.ProbeLimits for why.
    probe_memory_bytes: int = Field(
        default=_LIMITS.memory_bytes, ge=256 * MiB, validation_alias=_env("probe_memory_bytes")
    )
    probe_cpu_seconds: int = Field(
        default=_LIMITS.cpu_seconds, ge=1, validation_alias=_env("probe_cpu_seconds")
    )

    @property
    def probe_limits(self) -> ProbeLimits:
        return ProbeLimits(
            max_duration_seconds=self.max_duration_seconds,
            max_pixels=self.max_pixels,
            max_streams=self.max_streams,
            timeout_seconds=self.probe_timeout_seconds,
            memory_bytes=self.probe_memory_bytes,
            cpu_seconds=self.probe_cpu_seconds,
        )

    def limits_env(self) -> list[dict[str, str]]:
        """These limits as the environment variables another component reads them from."""
        names = MediaLimitSettings.model_fields
        return [{"name": env_name(n), "value": str(getattr(self, n))} for n in names]


class EncodeSettings(Shared):
    """How the processor encodes; the operator passes it on to every Job."""

    x264_preset: X264Preset = Field(default=X264_PRESET, validation_alias=_env("x264_preset"))
