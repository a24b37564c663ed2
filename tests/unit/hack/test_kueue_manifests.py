"""hack/kueue_manifests.py: Kueue's upstream manifests rewritten for a manager on the host."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from hack import kueue_manifests as km

pytestmark = pytest.mark.unit

ADDRESS = "127.0.0.1:9643"
CA = base64.b64encode(b"ca").decode()


def _hook(name: str, group: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": {
            "service": {"name": "webhook-service", "namespace": "system", "path": path}
        },
        "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "resources": ["x"]}],
    }


def test_only_enabled_integrations_keep_their_webhooks_and_each_points_at_the_host() -> None:
    # Fails if a webhook of a disabled integration (Pods here) is kept, which would refuse every
    # Pod while nothing serves its path, or if a kept one still names the in-cluster Service.
    doc = {
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "mutating-webhook-configuration"},
        "webhooks": [
            _hook("mjob.kb.io", "batch", "/mutate-batch-v1-job"),
            _hook("mpod.kb.io", "", "/mutate--v1-pod"),
            _hook("mclusterqueue.kb.io", "kueue.x-k8s.io", "/mutate-cq"),
        ],
    }
    [out] = km.webhook_configs([doc], ADDRESS, CA)
    assert out["metadata"]["name"] == "kueue-mutating-webhook-configuration"
    assert [w["name"] for w in out["webhooks"]] == ["mjob.kb.io", "mclusterqueue.kb.io"]
    assert out["webhooks"][0]["clientConfig"] == {
        "url": f"https://{ADDRESS}/mutate-batch-v1-job",
        "caBundle": CA,
    }


def test_only_jobs_labelled_for_a_queue_reach_kueues_job_webhooks() -> None:
    # Fails if every Job in the cluster goes through Kueue's webhook (a Kueue outage would then
    # refuse all Jobs, builtin mode's included) or if Kueue's own objects are filtered too.
    doc = {
        "kind": "ValidatingWebhookConfiguration",
        "webhooks": [
            _hook("vjob.kb.io", "batch", "/validate-batch-v1-job"),
            _hook("vclusterqueue.kb.io", "kueue.x-k8s.io", "/validate-cq"),
        ],
    }
    job_hook, queue_hook = km.webhook_configs([doc], ADDRESS, CA)[0]["webhooks"]
    assert job_hook["objectSelector"] == {
        "matchExpressions": [{"key": "kueue.x-k8s.io/queue-name", "operator": "Exists"}]
    }
    assert "objectSelector" not in queue_hook


def test_only_upstreams_converted_crds_get_the_conversion_webhook(tmp_path: Path) -> None:
    # Fails if a CRD without a converter in the manager (ResourceFlavor) gets the webhook: the
    # manager then answers every conversion of it with an error.
    for plural in ("workloads", "resourceflavors"):
        crd = {
            "spec": {
                "names": {"plural": plural},
                "versions": [{"name": "v1beta1"}, {"name": "v1beta2"}],
            }
        }
        (tmp_path / f"{plural}.yaml").write_text(yaml.safe_dump(crd))
    by_plural = {c["spec"]["names"]["plural"]: c for c in km.crds(tmp_path, ADDRESS, CA)}
    conversion = by_plural["workloads"]["spec"]["conversion"]
    assert conversion["webhook"]["clientConfig"]["url"] == f"https://{ADDRESS}/convert"
    assert "conversion" not in by_plural["resourceflavors"]["spec"]
