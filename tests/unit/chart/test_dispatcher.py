"""The chart's webhook dispatcher: no Kubernetes credentials, one allow-list for it and the API,
egress only to MongoDB, DNS and the receivers' ports. Rendered by the real helm and read back
through the components' own settings classes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.test_network_and_metrics import LOCAL_S3, by_kind, render
from tests.unit.chart.test_shared_env import MONGO_URL, environment, read
from vidpipe_api.settings import Settings as ApiSettings
from vidpipe_dispatcher.settings import DispatcherSettings

pytestmark = pytest.mark.unit

ALLOWED = ("webhooks.allowedHosts={hooks.internal,.svc.example,10.20.0.0/16}",)


def _container(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    deployment = by_kind(docs, "Deployment")[f"rel-vidpipe-{component}"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


def test_dispatcher_and_api_read_one_allow_list_and_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fails if the dispatcher and the API could disagree on which internal receivers are
    # allowed (one would accept a URL the other refuses), or the dispatcher missed MongoDB.
    docs = render(LOCAL_S3, *ALLOWED, "mongo.database=chosen")
    dispatcher = read(monkeypatch, DispatcherSettings, environment(_container(docs, "dispatcher")))
    api = read(monkeypatch, ApiSettings, environment(_container(docs, "api")))
    expected = ["hooks.internal", ".svc.example", "10.20.0.0/16"]
    assert dispatcher.allowed_hosts == api.webhook_allowed_hosts == expected
    assert dispatcher.mongo_url.get_secret_value() == MONGO_URL
    assert dispatcher.mongo_database == "chosen"


def test_dispatcher_has_no_kubernetes_credentials_and_narrow_egress() -> None:
    # Fails if the one component that connects to tenant-chosen addresses got a service account
    # token, S3 credentials, or egress beyond DNS, MongoDB and the receivers' ports.
    docs = render(LOCAL_S3)
    pod = by_kind(docs, "Deployment")["rel-vidpipe-dispatcher"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    account = by_kind(docs, "ServiceAccount")[pod["serviceAccountName"]]
    assert account["automountServiceAccountToken"] is False
    names = {v["name"] for v in _container(docs, "dispatcher")["env"]}
    assert not {n for n in names if "S3" in n}
    policy = by_kind(docs, "NetworkPolicy")["rel-vidpipe-dispatcher"]
    ports = {(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (27017, "TCP"), (443, "TCP"), (80, "TCP")}


def test_dispatcher_can_be_left_out() -> None:
    # Fails if disabling the dispatcher left any of its objects behind.
    docs = render(LOCAL_S3, "dispatcher.enabled=false")
    assert not [d for d in docs if "dispatcher" in d["metadata"]["name"]]
