"""The chart keeps the playback signing key across upgrades: its template reads the Secret
already in the cluster (`lookup`) and renders the same key, so tokens survive `helm upgrade`.
Rendered by the real helm against the real API server (`--dry-run=server` lets helm look up)."""

from __future__ import annotations

import base64
import subprocess
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.integration.api.conftest import REPO, Kube

pytestmark = pytest.mark.integration

HELM = REPO / "bin" / "helm"
CHART = REPO / "deploy" / "helm" / "vidpipe"


def rendered_secret(kube: Kube, release: str) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(HELM), "template", release, str(CHART), "-n", kube.namespace,
            "--kubeconfig", str(kube.kubeconfig), "--dry-run=server", "--kube-version", "1.33.0",
            "--show-only", "templates/playback-secret.yaml",
            "--set", "s3.endpoint=http://10.88.0.1:9000",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = yaml.safe_load(result.stdout)
    return doc


def test_an_upgrade_keeps_the_signing_key_in_the_cluster(kube: Kube) -> None:
    # Fails if the template generates a new key when the Secret exists (every upgrade would
    # invalidate every token players hold), or drops the previous key of a rotation.
    api = config.new_client_from_config(config_file=str(kube.kubeconfig))
    core = client.CoreV1Api(api)
    key, previous = "k" * 48, "p" * 48
    core.create_namespaced_secret(
        kube.namespace,
        {
            "metadata": {"name": "kept-vidpipe-playback"},
            "stringData": {"signing-key": key, "previous-signing-key": previous},
        },
    )
    try:
        data = rendered_secret(kube, "kept")["data"]
        assert base64.b64decode(data["signing-key"]).decode() == key
        assert base64.b64decode(data["previous-signing-key"]).decode() == previous
        # A release without the Secret gets a fresh random key each time it is first rendered.
        first = rendered_secret(kube, "fresh")["data"]["signing-key"]
        second = rendered_secret(kube, "fresh")["data"]["signing-key"]
        assert first != second and len(base64.b64decode(first)) >= 32
    finally:
        core.delete_namespaced_secret("kept-vidpipe-playback", kube.namespace)
        api.close()
