"""The chart value that switches the compatibility layer (the replaced service's paths) off,
rendered by the real helm and read back through the API's own Settings from the environment."""

from __future__ import annotations

import pytest

from tests.unit.chart.test_network_and_metrics import CHART, KUBE_VERSION, LOCAL_S3, by_kind, helm
from tests.unit.chart.test_network_and_metrics import render as render_chart
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.unit

VARIABLE = "VIDPIPE_API_COMPAT_ENABLED"


def api_env(*sets: str) -> dict[str, str]:
    deployment = by_kind(render_chart(LOCAL_S3, *sets), "Deployment")["rel-vidpipe-api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize(("sets", "enabled"), [((), True), (("api.compat.enabled=false",), False)])
def test_the_value_reaches_the_api_setting(
    sets: tuple[str, ...], enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fails if the template drops or misspells the variable, or renders a value the API's
    # Settings read otherwise (the layer would stay on, or go off, against the value).
    env = api_env(*sets)
    assert VARIABLE in env
    monkeypatch.setenv(VARIABLE, env[VARIABLE])
    assert Settings().compat_enabled is enabled


def test_the_default_matches_the_api_default() -> None:
    # Fails if the chart and a bare API disagree on whether old clients are served.
    assert Settings.model_fields["compat_enabled"].default is True


@pytest.mark.parametrize("value", ["api.compat.enabled=maybe", "api.compat.enable=false"])
def test_the_schema_refuses_a_wrong_value(value: str) -> None:
    # Fails if a non-boolean or a misspelt key is accepted (a typo would leave the layer on).
    result = helm(
        "template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", LOCAL_S3,
        "--set", value,
    )  # fmt: skip
    assert result.returncode != 0 and "compat" in result.stderr, result.stderr
