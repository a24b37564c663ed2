"""queueing.* values: the operator's queueing mode, its Kueue settings and RBAC, and the
WorkloadPriorityClasses. Rendered by the real helm and read back through OperatorSettings and
build_job, so a value the template drops or misspells fails here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.chart.test_network_and_metrics import LOCAL_S3, by_kind, render
from tests.unit.chart.test_operator_wiring import operator_settings as wired_settings
from tests.unit.operator.conftest import videojob
from vidpipe_operator import kueue
from vidpipe_operator.jobspec import build_job
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

KUEUE_API = "kueue.x-k8s.io/v1beta2/Workload"


def operator_settings(container: dict[str, Any]) -> OperatorSettings:
    """The operator's settings from its rendered env (the priority classes are JSON, as
    pydantic-settings reads them)."""
    env = {e["name"]: e for e in container["env"]}
    classes = env.get("VIDPIPE_OPERATOR_KUEUE_PRIORITY_CLASSES")
    container = {**container, "env": [e for e in container["env"] if e is not classes]}
    settings = wired_settings(container)
    if classes is None:
        return settings
    return settings.model_copy(update={"kueue_priority_classes": json.loads(classes["value"])})


def _operator(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind(docs, "Deployment")["rel-vidpipe-operator"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_builtin_by_default_with_nothing_of_kueues() -> None:
    # Fails if the default install needs Kueue (its CRDs, its RBAC) or hands Jobs to it.
    docs = render(LOCAL_S3)
    assert operator_settings(_operator(docs)).queueing_mode == "builtin"
    assert not [d for d in docs if str(d["apiVersion"]).startswith("kueue.x-k8s.io")]
    assert "rel-vidpipe-operator-kueue" not in by_kind(docs, "Role")


def test_kueue_mode_reaches_the_operator_and_its_jobs() -> None:
    # Fails if the mode, the ClusterQueue or the priority classes do not reach the operator, or
    # if its Role lacks what Kueue mode needs (create LocalQueues, read Workloads) or grants more.
    docs = render(
        LOCAL_S3,
        "queueing.mode=kueue",
        "queueing.kueue.clusterQueue=media",
        "queueing.kueue.priorityClasses.high=urgent",
    )
    settings = operator_settings(_operator(docs))
    assert (settings.queueing_mode, settings.kueue_cluster_queue) == ("kueue", "media")
    labels = build_job(videojob(priority="high"), settings)["metadata"]["labels"]
    assert labels[kueue.PRIORITY_LABEL] == "urgent"
    role = by_kind(docs, "Role")["rel-vidpipe-operator-kueue"]
    grants = {(r["resources"][0], tuple(r["verbs"])) for r in role["rules"]}
    assert grants == {("localqueues", ("create",)), ("workloads", ("get", "list", "watch"))}
    classes = by_kind(docs, "WorkloadPriorityClass")
    assert {name: c["value"] for name, c in classes.items()} == {
        "vidpipe-low": 100,
        "vidpipe-normal": 1000,
        "urgent": 10000,
    }


def test_an_existing_kueue_installations_classes_are_not_created_again() -> None:
    # Fails if the chart rendered WorkloadPriorityClasses it was told the cluster already has
    # (the install would then fight the platform team's own).
    docs = render(LOCAL_S3, "queueing.mode=kueue", "queueing.kueue.createPriorityClasses=false")
    assert not by_kind(docs, "WorkloadPriorityClass")


@pytest.mark.parametrize(("apis", "mode"), [((KUEUE_API,), "kueue"), ((), "builtin")])
def test_auto_follows_whether_the_cluster_serves_kueue(apis: tuple[str, ...], mode: str) -> None:
    # Fails if auto ignores the cluster's API (Kueue mode without Kueue: every Job would wait
    # for a queue that no one serves).
    docs = render(LOCAL_S3, "queueing.mode=auto", api_versions=apis)
    assert operator_settings(_operator(docs)).queueing_mode == mode
