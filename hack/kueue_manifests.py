"""Kueue's own manifests, rewritten for a manager that runs on the host (hack/cluster.sh).

Upstream's manifests point every webhook at a Service in kueue-system; here the manager is a host
process, so each webhook (admission and CRD conversion) gets a URL on the host's loopback and the
local CA as its caBundle: kube-apiserver runs on the same host and reaches it directly, without
kube-proxy or cluster DNS. Only the webhooks of what we enable are kept (Kueue's own resources and
batch/v1 Jobs): a webhook for a disabled integration (Pods, Deployments...) with failurePolicy Fail
would otherwise refuse every such object while nothing serves its path.

    hack/kueue_manifests.py crds|webhooks CONFIG_DIR CA_FILE HOST:PORT > manifests.yaml

`crds` (the CRDs and the manager's RBAC) goes in before the manager starts, `webhooks` once it
serves them: a webhook configuration pointing at a manager not yet listening would refuse every
Kueue object and every labelled Job meanwhile.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import yaml

# API groups whose webhooks we keep: Kueue's own objects and batch/v1 Jobs (the one integration
# enabled in the Configuration hack/cluster.sh writes).
KEPT_GROUPS = {"kueue.x-k8s.io", "batch"}
# The identity the manager authenticates as (its client certificate's CN) and the name its
# ClusterRole gets (upstream's kustomize prefix).
MANAGER_USER = "kueue-manager"
ROLE_NAME = "kueue-manager-role"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SECRETS_ROLE_NAME = "kueue-manager-secrets-role"
NAMESPACE = "kueue-system"  # the Configuration's namespace (hack/cluster.sh)
# The CRDs upstream's kustomization gives a conversion webhook (v1beta1 <-> v1beta2); the others
# have no converter in the manager and convert by apiVersion alone.
CONVERTED = {"localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters"}
WEBHOOK_CONFIGS = {
    "MutatingWebhookConfiguration": "kueue-mutating-webhook-configuration",
    "ValidatingWebhookConfiguration": "kueue-validating-webhook-configuration",
}

Doc = dict[str, Any]


def _client_config(address: str, path: str, ca_bundle: str) -> Doc:
    return {"url": f"https://{address}{path}", "caBundle": ca_bundle}


def _groups(webhook: Doc) -> set[str]:
    return {g for rule in webhook.get("rules") or [] for g in rule.get("apiGroups") or []}


def _kept(webhook: Doc) -> bool:
    groups = _groups(webhook)
    return bool(groups) and groups <= KEPT_GROUPS


def webhook_configs(docs: list[Doc], address: str, ca_bundle: str) -> list[Doc]:
    out = []
    for doc in docs:
        if doc.get("kind") not in WEBHOOK_CONFIGS:
            continue
        doc["metadata"] = {"name": WEBHOOK_CONFIGS[doc["kind"]]}
        kept = [w for w in doc.get("webhooks") or [] if _kept(w)]
        for webhook in kept:
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = _client_config(address, path, ca_bundle)
            if _groups(webhook) == {"batch"}:
                # Only Jobs labelled for a LocalQueue are Kueue's (manageJobsWithoutQueueName is
                # off): every other Job (builtin mode, the benches' thousands) never waits on
                # the webhook, nor fails while Kueue is down.
                webhook["objectSelector"] = {
                    "matchExpressions": [{"key": QUEUE_LABEL, "operator": "Exists"}]
                }
        doc["webhooks"] = kept
        out.append(doc)
    return out


def crds(crd_dir: Path, address: str, ca_bundle: str) -> list[Doc]:
    """Every CRD; those upstream converts through the manager's /convert endpoint get the same
    conversion webhook (what config/components/crd/kustomization.yaml patches in)."""
    out = []
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["plural"] in CONVERTED:
            crd["spec"]["conversion"] = {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": _client_config(address, "/convert", ca_bundle),
                    "conversionReviewVersions": ["v1"],
                },
            }
        out.append(crd)
    return out


def _binding(kind: str, name: str, namespace: str | None = None) -> Doc:
    meta: Doc = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": f"{kind}Binding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": MANAGER_USER}
        ],
    }


def rbac(config: Path) -> list[Doc]:
    """Upstream's ClusterRole and its Role on Secrets in Kueue's namespace (the manager waits for
    its Secret informer to sync before any controller starts), bound to the manager's user."""
    role = yaml.safe_load((config / "role.yaml").read_text())
    role["metadata"] = {"name": ROLE_NAME}
    secrets = yaml.safe_load((config / "secrets_role.yaml").read_text())
    secrets["metadata"] = {"name": SECRETS_ROLE_NAME, "namespace": NAMESPACE}
    return [
        role,
        _binding("ClusterRole", ROLE_NAME),
        secrets,
        _binding("Role", SECRETS_ROLE_NAME, NAMESPACE),
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[1] not in {"crds", "webhooks"}:
        print(__doc__, file=sys.stderr)
        return 2
    part, config, ca_file, address = argv[1], Path(argv[2]), Path(argv[3]), argv[4]
    ca_bundle = base64.b64encode(ca_file.read_bytes()).decode()
    if part == "crds":
        docs = [*crds(config / "crd", address, ca_bundle), *rbac(config)]
    else:
        hooks = [d for d in yaml.safe_load_all((config / "webhooks.yaml").read_text()) if d]
        docs = webhook_configs(hooks, address, ca_bundle)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
