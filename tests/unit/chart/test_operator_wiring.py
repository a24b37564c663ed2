"""Chart values that reach the operator: processor placement (node selector, tolerations) and
the liveness probe. Rendered by the real helm, read back through OperatorSettings and build_job,
so a value the template drops or misspells fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.chart.test_network_and_metrics import LOCAL_S3, by_kind, helm, render
from tests.unit.operator.conftest import videojob
from vidpipe_operator.jobspec import build_job
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

TOLERATION = {"key": "vidpipe.io/transcode", "operator": "Exists", "effect": "NoSchedule"}


def operator_container(*sets: str) -> dict[str, Any]:
    deployment = by_kind(render(LOCAL_S3, *sets), "Deployment")["rel-vidpipe-operator"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def operator_settings(container: dict[str, Any]) -> OperatorSettings:
    prefix = "VIDPIPE_OPERATOR_"
    env = {
        e["name"].removeprefix(prefix).lower(): e["value"]
        for e in container["env"]
        if "value" in e and e["name"].startswith(prefix)
    }
    # pydantic-settings decodes complex values from JSON; do the same for the rendered strings.
    for name in ("namespaces", "processor_node_selector", "processor_tolerations"):
        if name in env:
            env[name] = json.loads(env[name])
    return OperatorSettings.model_validate(env)


def test_placement_values_reach_the_processor_pods() -> None:
    # Fails if the template drops nodeSelector/tolerations or build_job ignores the settings.
    container = operator_container(
        "jobs.nodeSelector.vidpipe\\.io/pool=transcode",
        "jobs.tolerations[0].key=vidpipe.io/transcode",
        "jobs.tolerations[0].operator=Exists",
        "jobs.tolerations[0].effect=NoSchedule",
    )
    pod = build_job(videojob(), operator_settings(container))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"vidpipe.io/pool": "transcode"}
    assert pod["tolerations"] == [TOLERATION]


def test_no_placement_values_means_no_constraints() -> None:
    pod = build_job(videojob(), operator_settings(operator_container()))["spec"]["template"]
    assert "nodeSelector" not in pod["spec"] and "tolerations" not in pod["spec"]


def test_the_liveness_probe_calls_the_heartbeat_endpoint() -> None:
    # Fails if the probe points at another port or path than the one the operator serves.
    container = operator_container("operator.livenessStaleSeconds=120")
    settings = operator_settings(container)
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (probe["path"], ports[probe["port"]]) == ("/healthz", settings.liveness_port)
    assert settings.liveness_stale_seconds == 120


def test_a_stale_limit_shorter_than_a_resync_round_is_refused() -> None:
    # Would restart a healthy idle operator between two resync rounds.
    argv = ["template", "rel", "deploy/helm/vidpipe", "--set", "operator.livenessStaleSeconds=30"]
    result = helm(*argv)
    assert result.returncode != 0 and "livenessStaleSeconds" in result.stderr
    with pytest.raises(ValueError, match="liveness_stale_seconds"):
        OperatorSettings(liveness_stale_seconds=30)
