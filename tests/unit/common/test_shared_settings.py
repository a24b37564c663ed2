"""One settings vocabulary: each fact the components share has one name, one default and one
declaration (vidpipe.settings); 0.2.0's per-component names are still read as fallbacks."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from vidpipe import settings as shared
from vidpipe.probe import ProbeLimits
from vidpipe_api.settings import Settings as ApiSettings
from vidpipe_operator.settings import OperatorSettings
from vidpipe_processor.settings import ProcessorSettings

pytestmark = pytest.mark.unit

GROUPS: tuple[type[BaseSettings], ...] = (
    shared.S3Settings,
    shared.MongoSettings,
    shared.MediaLimitSettings,
    shared.EncodeSettings,
)
COMPONENTS: tuple[type[BaseSettings], ...] = (ApiSettings, OperatorSettings, ProcessorSettings)
SHARED_FIELDS = {name for group in GROUPS for name in group.model_fields}
SPEC = {"jobId": "j-1", "owner": "alice", "source": {"bucket": "uploads", "key": "sources/j-1"}}
# A value each shared field accepts, unlike its default.
SAMPLES: dict[str, str | int | float] = {
    "s3_bucket": "legacy-bucket",
    "s3_endpoint_url": "http://legacy.example:9000",
    "s3_region": "eu-legacy-1",
    "s3_access_key_id": "legacy-key-id",
    "s3_secret_access_key": "legacy-secret-key",
    "mongo_url": "mongodb://legacy.example:27017/",
    "mongo_database": "legacydb",
    "max_duration_seconds": 90.0,
    "max_pixels": 921600,
    "max_streams": 3,
    "probe_timeout_seconds": 20.0,
    "probe_memory_bytes": 300 * 1024 * 1024,
    "probe_cpu_seconds": 7,
    "x264_preset": "slow",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("VIDPIPE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIDPIPE_JOB_SPEC", json.dumps(SPEC))


def plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_shared_fact_is_declared_once() -> None:
    # Fails if a component declares a shared field again (its own default, its own name).
    for component in COMPONENTS:
        own = set(vars(component).get("__annotations__", {}))
        assert not own & SHARED_FIELDS, (component.__name__, own & SHARED_FIELDS)
    assert set(SAMPLES) == SHARED_FIELDS


def test_every_component_has_the_same_default() -> None:
    # Fails if the API, the operator and the processor disagree on a default (vidpipe vs
    # vidpipe-media for the bucket, as 0.2.0 did), or if the limits leave ProbeLimits' defaults.
    built: list[ApiSettings | OperatorSettings | ProcessorSettings]
    built = [ApiSettings(), OperatorSettings(), ProcessorSettings()]
    for name in SHARED_FIELDS:
        values = {plain(getattr(s, name)) for s in built if name in type(s).model_fields}
        assert len(values) == 1, (name, values)
    assert {s.probe_limits for s in built} == {ProbeLimits()}
    assert OperatorSettings().s3_bucket == "vidpipe-media"


def test_one_variable_configures_every_component(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if a component reads a shared fact from a name of its own instead of VIDPIPE_*.
    for name, value in SAMPLES.items():
        monkeypatch.setenv(shared.env_name(name), str(value))
    for component in (ApiSettings(), OperatorSettings(), ProcessorSettings()):
        for name in SHARED_FIELDS & set(type(component).model_fields):
            assert plain(getattr(component, name)) == SAMPLES[name], (component, name)


def _legacy_cases() -> list[tuple[type[BaseSettings], str, str]]:
    owners: dict[str, type[BaseSettings]] = {
        "VIDPIPE_API_": ApiSettings,
        "VIDPIPE_OPERATOR_": OperatorSettings,
    }
    return [
        (owner, variable, field)
        for field, variables in shared.LEGACY_ENV.items()
        for variable in variables
        for prefix, owner in owners.items()
        if variable.startswith(prefix)
    ]


@pytest.mark.parametrize(("component", "variable", "field"), _legacy_cases())
def test_a_0_2_0_variable_is_still_read(
    monkeypatch: pytest.MonkeyPatch, component: type[BaseSettings], variable: str, field: str
) -> None:
    # Fails if a name a 0.2.0 deployment set (chart or extraEnv) is no longer read by the
    # component that read it then, so an upgrade would silently fall back to the default.
    monkeypatch.setenv(variable, str(SAMPLES[field]))
    assert plain(getattr(component(), field)) == SAMPLES[field]


def test_the_shared_name_wins_over_the_old_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if an old variable left in extraEnv could override the chart's value.
    monkeypatch.setenv("VIDPIPE_OPERATOR_OUTPUT_BUCKET", "old-bucket")
    monkeypatch.setenv("VIDPIPE_API_S3_BUCKET", "old-bucket")
    monkeypatch.setenv("VIDPIPE_S3_BUCKET", "new-bucket")
    assert OperatorSettings().s3_bucket == ApiSettings().s3_bucket == "new-bucket"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIDPIPE_S3_SECRET_ACCESS_KEY", "changeme"),
        ("VIDPIPE_MONGO_URL", "mongodb://admin:password@db/"),
        ("VIDPIPE_MONGO_URL", "http://db"),
        ("VIDPIPE_S3_BUCKET", "b"),
        ("VIDPIPE_MAX_PIXELS", "0"),
        ("VIDPIPE_X264_PRESET", "fastest"),
    ],
)
def test_bad_shared_values_are_refused_by_every_component(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # Fails if one component accepts what another refuses (placeholder secrets, non-MongoDB
    # URLs, invalid bucket names, limits, presets): validators live with the shared field.
    monkeypatch.setenv(variable, value)
    field = variable.removeprefix(shared.PREFIX).lower()
    readers = [c for c in COMPONENTS if field in c.model_fields]
    assert readers
    for component in readers:
        with pytest.raises(ValueError, match=variable):
            component()
