"""The chart's playback signing key: generated into a Secret, read by the API from it, and the
playback values reaching the API's settings. Rendered by the real helm."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.unit.chart.test_network_and_metrics import (
    CHART,
    KUBE_VERSION,
    LOCAL_S3,
    by_kind,
    helm,
    render,
)
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.unit


def api_env(*sets: str) -> dict[str, Any]:
    deployment = by_kind(render(LOCAL_S3, *sets), "Deployment")["rel-vidpipe-api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_chart_generates_a_strong_key_and_the_api_reads_it_from_the_secret() -> None:
    # Fails if the key is a value in the Deployment, too short for the API, or in another
    # Secret than the one the API's env names.
    docs = render(LOCAL_S3)
    secret = by_kind(docs, "Secret")["rel-vidpipe-playback"]
    key = base64.b64decode(secret["data"]["signing-key"])
    assert len(key) >= 32
    env = api_env()
    ref = env["VIDPIPE_API_PLAYBACK_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "rel-vidpipe-playback", "key": "signing-key"}
    previous = env["VIDPIPE_API_PLAYBACK_PREVIOUS_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]
    assert previous["optional"] is True and previous["name"] == "rel-vidpipe-playback"
    Settings(playback_signing_key=key.decode())  # the API starts with it


def test_an_existing_secret_replaces_the_generated_one() -> None:
    # Fails if the chart still writes its own Secret, or the API reads the wrong one.
    docs = render(LOCAL_S3, "playback.existingSecret=mine", "playback.signingKeyKey=k")
    assert "rel-vidpipe-playback" not in by_kind(docs, "Secret")
    ref = api_env("playback.existingSecret=mine", "playback.signingKeyKey=k")[
        "VIDPIPE_API_PLAYBACK_SIGNING_KEY"
    ]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mine", "key": "k"}


def test_playback_values_reach_the_api_settings() -> None:
    # Fails if a value is dropped or misspelt on its way to VIDPIPE_API_PLAYBACK_*.
    env = api_env("playback.media=presign", "playback.stateCacheSeconds=2")
    values = {
        name.removeprefix("VIDPIPE_API_").lower(): e["value"]
        for name, e in env.items()
        if name.startswith("VIDPIPE_API_PLAYBACK_") and "value" in e
    }
    settings = Settings.model_validate(values)
    assert settings.playback_media == "presign"
    assert settings.playback_state_cache_seconds == 2
    assert set(values) == {
        "playback_token_ttl_seconds",
        "playback_max_token_ttl_seconds",
        "playback_state_cache_seconds",
        "playback_media",
        "playback_presign_ttl_seconds",
    }


def test_the_schema_refuses_an_unknown_media_mode() -> None:
    # Fails if values.schema.json lets a typo through to an API that would not start.
    result = helm(
        "template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", LOCAL_S3,
        "--set", "playback.media=cdn",
    )  # fmt: skip
    assert result.returncode != 0 and "media" in result.stderr
