"""The chart renders each shared setting once, under its one name, for the API and the operator, and
the operator passes the media limits and the preset on to the processor's Job. Rendered by the real
helm and read back through each component's own settings class from the environment, so a value
the template drops, misspells or renders twice fails here."""

from __future__ import annotations

import json
import os
import typing
from typing import Any, TypeVar

import pytest

from tests.unit.chart.test_network_and_metrics import (
    CHART,
    KUBE_VERSION,
    LOCAL_S3,
    by_kind,
    helm,
    render,
)
from tests.unit.operator.conftest import videojob
from vidpipe import settings as shared
from vidpipe_api.settings import Settings as ApiSettings
from vidpipe_operator.jobspec import build_job
from vidpipe_operator.settings import OperatorSettings
from vidpipe_processor.settings import ProcessorSettings

pytestmark = pytest.mark.unit
T = TypeVar("T")

CHOSEN = (
    "s3.bucket=chosen-bucket",
    "s3.region=eu-central-1",
    "mongo.database=chosen",
    "limits.maxDurationSeconds=90",
    "limits.maxPixels=921600",
    "limits.maxStreams=3",
    "jobs.x264Preset=slow",
)
# What the Secrets would hold; the chart only names them.
SECRETS = {
    "AWS_ACCESS_KEY_ID": "rendered-key-id",
    "AWS_SECRET_ACCESS_KEY": "rendered-secret",
    # The playback signing keys (at least 32 bytes, or the API refuses to start).
    "signing-key": "rendered-playback-signing-key-0123456789",
    "previous-signing-key": "rendered-previous-signing-key-0123456789",
}
MONGO_URL = "mongodb://db.example:27017/"
OLD_NAMES = {n for names in shared.LEGACY_ENV.values() for n in names}
# Rendered for the API and the operator alike (the preset only for the operator, which alone
# hands it on).
SHARED_NAMES = {
    shared.env_name(n)
    for n in (
        "s3_bucket",
        "s3_region",
        "s3_endpoint_url",
        "s3_access_key_id",
        "s3_secret_access_key",
        "mongo_url",
        "mongo_database",
        "max_duration_seconds",
        "max_pixels",
        "max_streams",
    )
}


def containers(*sets: str) -> dict[str, dict[str, Any]]:
    deployments = by_kind(render(LOCAL_S3, *sets), "Deployment")
    found = {}
    for component in ("api", "operator"):
        (container,) = deployments[f"rel-vidpipe-{component}"]["spec"]["template"]["spec"][
            "containers"
        ]
        found[component] = container
    return found


def environment(container: dict[str, Any]) -> dict[str, str]:
    """The variables as the kubelet would set them (Secret references resolved to test values)."""
    env = {}
    for variable in container["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif ref:
            env[variable["name"]] = SECRETS.get(ref["key"], MONGO_URL)
    return env


def read(monkeypatch: pytest.MonkeyPatch, component: type[T], env: dict[str, str]) -> T:
    """`component`'s settings with exactly `env` as its VIDPIPE_* environment."""
    for name in [n for n in os.environ if n.startswith("VIDPIPE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return component()


def test_each_shared_value_is_rendered_once_and_alike_for_api_and_operator() -> None:
    # Fails if a Deployment renders a shared variable twice, under an old name, or differently
    # from the other Deployment (the 0.2.0 chart repeated each one per Deployment).
    rendered = containers(*CHOSEN)
    blocks = []
    for container in rendered.values():
        names = [v["name"] for v in container["env"]]
        assert len(names) == len(set(names)), names
        assert not OLD_NAMES & set(names)
        blocks.append([v for v in container["env"] if v["name"] in SHARED_NAMES])
    assert blocks[0] == blocks[1]
    assert {v["name"] for v in blocks[0]} == SHARED_NAMES


def test_the_chart_values_reach_api_operator_and_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if a value does not reach a component's settings, in particular if the chart's
    # `limits` stop at the API again instead of reaching the processor through the Job.
    rendered = containers(*CHOSEN)
    api = read(monkeypatch, ApiSettings, environment(rendered["api"]))
    operator = read(monkeypatch, OperatorSettings, environment(rendered["operator"]))
    (job_container,) = build_job(videojob("j-1"), operator)["spec"]["template"]["spec"][
        "containers"
    ]
    processor = read(monkeypatch, ProcessorSettings, environment(job_container))

    for settings in (api, operator):
        assert settings.s3_bucket == "chosen-bucket"
        assert settings.s3_region == "eu-central-1"
        assert settings.s3_endpoint_url == "http://10.88.0.1:9000"
        assert settings.s3_credentials() == ("rendered-key-id", "rendered-secret")
        assert settings.mongo_url.get_secret_value() == MONGO_URL
        assert settings.mongo_database == "chosen"
    limits = api.probe_limits
    assert (limits.max_duration_seconds, limits.max_pixels, limits.max_streams) == (90, 921600, 3)
    assert processor.probe_limits == operator.probe_limits == limits
    assert processor.x264_preset == operator.x264_preset == "slow"


def test_the_chart_defaults_are_the_code_defaults() -> None:
    # Fails if values.yaml and vidpipe.settings drift apart: a bare component and a default
    # install would then apply different buckets, databases, limits or presets.
    env = environment(containers()["operator"])
    code = {
        "s3_bucket": shared.S3Settings.model_fields["s3_bucket"].default,
        "s3_region": shared.S3Settings.model_fields["s3_region"].default,
        "mongo_database": shared.MongoSettings.model_fields["mongo_database"].default,
        "x264_preset": shared.X264_PRESET,
        **{
            name: shared.MediaLimitSettings.model_fields[name].default
            for name in ("max_duration_seconds", "max_pixels", "max_streams")
        },
    }
    for name, default in code.items():
        assert type(default)(env[shared.env_name(name)]) == default, name


def test_the_schema_refuses_a_preset_the_processor_would_refuse() -> None:
    # Fails if values.schema.json lets through a preset the shared settings refuse: the operator
    # would then crash at start instead of `helm install` naming the value.
    result = helm(
        "template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", LOCAL_S3,
        "--set", "jobs.x264Preset=fastest",
    )  # fmt: skip
    assert result.returncode != 0 and "x264Preset" in result.stderr, result.stderr
    schema = json.loads((CHART / "values.schema.json").read_text())
    enum = schema["properties"]["jobs"]["properties"]["x264Preset"]["enum"]
    assert set(enum) == set(typing.get_args(shared.X264Preset))


def test_who_may_ask_for_high_priority_reaches_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fails if the chart's default let every tenant's key ask for `high` (it preempts other
    # tenants in kueue mode), or if a platform that allows it cannot say so.
    default = read(monkeypatch, ApiSettings, environment(containers()["api"]))
    assert default.high_priority_admins_only is True
    opened = containers("queueing.highPriorityAdminsOnly=false")["api"]
    assert read(monkeypatch, ApiSettings, environment(opened)).high_priority_admins_only is False
