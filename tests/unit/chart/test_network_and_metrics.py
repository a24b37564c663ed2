"""The chart's NetworkPolicies and metrics wiring, rendered by the real helm (`helm template`, no
cluster): each component is isolated and selected, egress is limited to DNS, the Kubernetes API,
S3 and (API, operator) MongoDB on the ports the values give, and /metrics is on its own port.

Nothing here proves enforcement: the local cluster's bridge CNI ignores NetworkPolicy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.operator.conftest import videojob
from vidpipe_operator.jobspec import build_job
from vidpipe_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "vidpipe"
HELM = REPO / "bin" / "helm"
KUBE_VERSION = "1.33.0"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
LOCAL_S3 = "s3.endpoint=http://10.88.0.1:9000"
DNS = {(53, "UDP"), (53, "TCP")}
KUBE_API = {(443, "TCP"), (6443, "TCP")}

Doc = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        raise FileNotFoundError(f"{HELM} is missing: run `make tools` first")
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(*sets: str, api_versions: tuple[str, ...] = ()) -> list[Doc]:
    argv = ["template", "rel", str(CHART), "-n", "media", "--kube-version", KUBE_VERSION]
    for value in sets:
        argv += ["--set", value]
    for api in api_versions:
        argv += ["--api-versions", api]
    result = helm(*argv)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def policies(*sets: str) -> dict[str, Doc]:
    return by_kind(render(LOCAL_S3, *sets), "NetworkPolicy")


def ports(rule: Doc) -> set[tuple[int | str, str]]:
    return {(p["port"], p.get("protocol", "TCP")) for p in rule["ports"]}


def egress_ports(policy: Doc) -> set[tuple[int | str, str]]:
    found: set[tuple[int | str, str]] = set()
    for rule in policy["spec"]["egress"]:
        found |= ports(rule)
    return found


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # no expressions to evaluate here
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def pod_labels(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """Labels of every Pod the release creates: Deployments, the test hook and processor Jobs."""
    found = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    found |= {d["metadata"]["name"]: d["metadata"]["labels"] for d in docs if d["kind"] == "Pod"}
    job = build_job(videojob(), OperatorSettings())
    found["processor"] = job["spec"]["template"]["metadata"]["labels"]
    return found


def container_ports(docs: list[Doc]) -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: {
            p["name"] for c in d["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        for d in docs
        if d["kind"] == "Deployment"
    }


def test_the_chart_lints_with_and_without_the_optional_parts() -> None:
    for sets in ([], ["networkPolicy.enabled=false", "api.service.type=LoadBalancer"]):
        argv = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
        for value in sets:
            argv += ["--set", value]
        result = helm(*argv)
        assert result.returncode == 0 and "0 chart(s) failed" in result.stdout, result.stdout


def test_every_pod_of_the_release_is_selected_by_its_own_policy() -> None:
    docs = render(LOCAL_S3)
    nps = by_kind(docs, "NetworkPolicy")
    labels = pod_labels(docs)
    assert set(labels) == {
        "rel-vidpipe-api",
        "rel-vidpipe-operator",
        "rel-vidpipe-dispatcher",
        "rel-vidpipe-test-api",
        "processor",
    }
    expected = {
        "rel-vidpipe-api": "rel-vidpipe-api",
        "rel-vidpipe-operator": "rel-vidpipe-operator",
        "rel-vidpipe-dispatcher": "rel-vidpipe-dispatcher",
        "rel-vidpipe-test-api": "rel-vidpipe-test",
        "processor": "rel-vidpipe-processor",
    }
    for pod, policy in expected.items():
        chosen = {n for n, np in nps.items() if selects(np["spec"]["podSelector"], labels[pod])}
        assert policy in chosen, (pod, chosen)
        # Each component's policy selects that component only.
        others = {
            p for p in labels if p != pod and selects(nps[policy]["spec"]["podSelector"], labels[p])
        }
        assert not others, (policy, others)
    # The default deny isolates every Pod the chart itself creates, both ways, allowing nothing.
    deny = nps["rel-vidpipe-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    for pod in ("rel-vidpipe-api", "rel-vidpipe-operator", "rel-vidpipe-test-api"):
        assert selects(deny["podSelector"], labels[pod])
    # Processor Pods live in the jobs namespace (here the release's) and are isolated both ways.
    processor = nps["rel-vidpipe-processor"]
    assert processor["metadata"]["namespace"] == "media"
    assert processor["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in processor["spec"]


def test_processor_policy_follows_the_jobs_namespace() -> None:
    nps = policies("jobs.namespace=media-jobs")
    assert nps["rel-vidpipe-processor"]["metadata"]["namespace"] == "media-jobs"
    assert nps["rel-vidpipe-api"]["metadata"]["namespace"] == "media"


def test_egress_is_restricted_to_the_listed_ports() -> None:
    nps = policies()
    for name, np in nps.items():
        for rule in np["spec"].get("egress", []):
            # A rule without ports would open every port of its peers.
            assert rule.get("ports"), (name, rule)
    s3 = {(9000, "TCP")}
    mongo = {(27017, "TCP")}
    assert egress_ports(nps["rel-vidpipe-api"]) == DNS | KUBE_API | s3 | mongo
    assert egress_ports(nps["rel-vidpipe-operator"]) == DNS | KUBE_API | s3 | mongo
    # Hostile media never gets a route to MongoDB.
    assert egress_ports(nps["rel-vidpipe-processor"]) == DNS | KUBE_API | s3
    assert egress_ports(nps["rel-vidpipe-test"]) == DNS | mongo | {("http", "TCP")}


def test_ports_and_addresses_come_from_the_values() -> None:
    nps = policies(
        "networkPolicy.s3.ports={9100}",
        "networkPolicy.s3.cidrs={192.0.2.10/32}",
        "networkPolicy.mongo.ports={27018}",
        "networkPolicy.mongo.cidrs={198.51.100.0/24}",
        "networkPolicy.kubernetesApi.ports={8443}",
        "networkPolicy.kubernetesApi.cidrs={203.0.113.1/32}",
    )
    rules = {
        frozenset(ports(rule)): [peer["ipBlock"]["cidr"] for peer in rule.get("to", [])]
        for rule in nps["rel-vidpipe-api"]["spec"]["egress"]
    }
    assert rules == {
        frozenset(DNS): [],
        frozenset({(8443, "TCP")}): ["203.0.113.1/32"],
        frozenset({(9100, "TCP")}): ["192.0.2.10/32"],
        frozenset({(27018, "TCP")}): ["198.51.100.0/24"],
    }
    assert egress_ports(nps["rel-vidpipe-processor"]) == DNS | {(8443, "TCP"), (9100, "TCP")}


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([], {443}),  # AWS S3
        (["s3.endpoint=https://s3.example.com"], {443}),
        (["s3.endpoint=http://minio.storage"], {80}),
        (
            ["s3.endpoint=http://minio:9000", "s3.processorEndpoint=http://10.0.0.5:9100"],
            {9000, 9100},
        ),
    ],
)
def test_s3_ports_are_derived_from_the_endpoints(sets: list[str], expected: set[int]) -> None:
    nps = by_kind(render(*sets), "NetworkPolicy")
    dns, kube_api, s3 = nps["rel-vidpipe-processor"]["spec"]["egress"]
    assert (ports(dns), ports(kube_api)) == (DNS, KUBE_API)
    assert ports(s3) == {(port, "TCP") for port in expected}


def test_dns_peers_and_metrics_scrapers_are_configurable() -> None:
    nps = policies(
        "networkPolicy.dns.to[0].namespaceSelector.matchLabels.team=dns",
        "networkPolicy.metrics.namespaceSelector.matchLabels.team=monitoring",
        "networkPolicy.metrics.podSelector.matchLabels.app=scraper",
    )
    api = nps["rel-vidpipe-api"]["spec"]
    (dns,) = [r for r in api["egress"] if ports(r) == DNS]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"team": "dns"}}}]
    public, metrics = api["ingress"]
    assert ports(public) == {("http", "TCP")} and "from" not in public  # the public endpoint
    assert ports(metrics) == {("metrics", "TCP")}
    assert metrics["from"] == [
        {
            # Helm merges maps: the default label stays unless set to null.
            "podSelector": {
                "matchLabels": {"app": "scraper", "app.kubernetes.io/name": "prometheus"}
            },
            "namespaceSelector": {"matchLabels": {"team": "monitoring"}},
        }
    ]
    (operator_metrics,) = nps["rel-vidpipe-operator"]["spec"]["ingress"]
    assert operator_metrics == metrics


def test_named_ports_in_policies_exist_on_the_selected_pods() -> None:
    docs = render(LOCAL_S3)
    named = container_ports(docs)
    assert "metrics" in named["rel-vidpipe-operator"]
    assert {"http", "metrics"} <= named["rel-vidpipe-api"]


def test_network_policy_can_be_disabled() -> None:
    assert policies("networkPolicy.enabled=false") == {}


def test_api_metrics_have_their_own_port_and_service_port() -> None:
    docs = render(LOCAL_S3)
    api = by_kind(docs, "Deployment")["rel-vidpipe-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert {(p["name"], p["containerPort"]) for p in container["ports"]} == {
        ("http", 8080),
        ("metrics", 9090),
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VIDPIPE_API_METRICS_PORT"] == "9090"
    service = by_kind(docs, "Service")["rel-vidpipe-api"]
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("http", 80),
        ("metrics", 9090),
    ]
    assert "ServiceMonitor" not in {d["kind"] for d in docs}  # opt-in


def test_a_public_service_type_keeps_metrics_on_a_cluster_only_service() -> None:
    services = by_kind(render("api.service.type=LoadBalancer"), "Service")
    assert [p["name"] for p in services["rel-vidpipe-api"]["spec"]["ports"]] == ["http"]
    internal = services["rel-vidpipe-api-metrics"]["spec"]
    assert internal["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in internal["ports"]] == [("metrics", 9090)]


def test_service_monitor_scrapes_the_api_and_operator_metrics_ports() -> None:
    docs = render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
        "metrics.apiPort=9191",
        api_versions=(SERVICE_MONITOR_API,),
    )
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    selector = monitor["spec"]["selector"]
    scraped = {
        name: [p["port"] for p in svc["spec"]["ports"] if p["name"] == "metrics"]
        for name, svc in by_kind(docs, "Service").items()
        if selects({"matchLabels": selector["matchLabels"]}, svc["metadata"]["labels"])
        and svc["metadata"]["labels"]["app.kubernetes.io/component"] in {"api", "operator"}
    }
    assert scraped == {"rel-vidpipe-api": [9191], "rel-vidpipe-operator-metrics": [8080]}


def test_service_monitor_without_its_crd_fails_with_a_clear_message() -> None:
    argv = ["template", "rel", str(CHART), "--kube-version", KUBE_VERSION]
    result = helm(*argv, "--set", "metrics.serviceMonitor.enabled=true")
    assert result.returncode != 0
    assert "ServiceMonitor CRD" in result.stderr


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("networkPolicy.mongo.ports={x}", "/networkPolicy/mongo/ports/0"),
        ("networkPolicy.s3.cidrs={not-a-cidr}", "/networkPolicy/s3/cidrs/0"),
        ("metrics.apiPort=8080", "/metrics/apiPort"),
        ("networkPolicy.enabled=maybe", "/networkPolicy/enabled"),
    ],
)
def test_schema_refuses_bad_values(value: str, path: str) -> None:
    argv = ["template", "rel", str(CHART), "--kube-version", KUBE_VERSION, "--set", value]
    result = helm(*argv)
    assert result.returncode != 0
    assert path in result.stderr, result.stderr


def test_the_api_disruption_budget_never_blocks_a_drain_of_a_single_replica() -> None:
    # Fails if one API replica gets a PodDisruptionBudget of minAvailable 1 (kubectl drain and
    # managed node upgrades would hang on its node), or if two replicas lose theirs.
    def budgets(*sets: str) -> list[Doc]:
        return [d for d in render(LOCAL_S3, *sets) if d["kind"] == "PodDisruptionBudget"]

    assert budgets("api.replicas=1") == []
    (pdb,) = budgets("api.replicas=2")
    assert pdb["spec"]["minAvailable"] == 1
