"""Chart values that reach the operator: processor placement (node selector, tolerations) and
the liveness probe. Rendered by the real helm, read back through OperatorSettings and build_job,
so a value the template drops or misspells fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.unit.chart.test_network_and_metrics import (
    CHART,
    KUBE_VERSION,
    LOCAL_S3,
    REPO,
    by_kind,
    helm,
    render,
)
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


def test_the_operators_memory_limit_holds_the_measured_peak_at_10000_videojobs() -> None:
    # Fails if the chart's default limit is below the operator's peak RSS measured by
    # bench/operator_scale.py (10,000 VideoJobs): the Pod would be OOM-killed at that scale,
    # restart, re-list every VideoJob and peak again. 256Mi was the limit before.
    figures = json.loads((REPO / "bench" / "results" / "operator_scale.json").read_text())
    peak_mib = figures["figures"]["operator_peak_rss_mib"]
    limit = operator_container()["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and int(limit.removesuffix("Mi")) >= 1.25 * peak_mib, limit


def test_each_release_elects_its_leader_on_its_own_lease() -> None:
    # Fails if two releases in one namespace share a Lease (the second one's operator would
    # never lead, so its VideoJobs would never start), or if the default release's name
    # changed on upgrade (a running operator would not find its Lease).
    def lease(release: str) -> str:
        argv = ["template", release, str(CHART), "--kube-version", KUBE_VERSION, "--set", LOCAL_S3]
        result = helm(*argv)
        assert result.returncode == 0, result.stderr
        (deployment,) = [
            d
            for d in yaml.safe_load_all(result.stdout)
            if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
        ]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return str(operator_settings(dict(container)).lease_name)

    assert lease("vidpipe") == "vidpipe-operator"
    assert lease("media-a") != lease("media-b")
