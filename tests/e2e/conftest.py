"""Fixtures for tests that run against the local cluster (`make cluster-up`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils.cluster import LocalCluster, local_cluster


@pytest.fixture(scope="session")
def cluster() -> LocalCluster:
    return local_cluster()


@pytest.fixture(scope="session")
def kube_api(cluster: LocalCluster) -> Any:
    """A kubernetes ApiClient for the local cluster's admin user."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig))
