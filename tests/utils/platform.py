"""The chart installed into the local cluster, driven as a user drives it (e2e and security tests).

`installed(cluster, release)` installs a release with the locally built images (hack/platform.sh
install), creates an API key inside the API Pod, and uninstalls on exit. The API is reached through
its Service's ClusterIP, which kube-proxy routes from the host too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.utils.cluster import REPO, LocalCluster

CHART = REPO / "deploy" / "helm" / "vidpipe"
BIN = REPO / "bin"


def run(*argv: str, cluster: LocalCluster, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if check and result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        raise AssertionError(f"{argv} exited {result.returncode}:\n{output}")
    return result


@dataclass(frozen=True)
class Platform:
    cluster: LocalCluster
    namespace: str
    base_url: str
    key: str

    def kubectl(self, *args: str, check: bool = True) -> str:
        argv = (str(BIN / "kubectl"), "-n", self.namespace, *args)
        return run(*argv, cluster=self.cluster, check=check).stdout

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return result

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=120)

    def create_key(self, owner: str) -> str:
        return self.kubectl(
            "exec", f"deploy/{self.namespace}-api", "--",
            "python3", "-m", "vidpipe_api.cli", "create-key", "--owner", owner,
        ).strip()  # fmt: skip

    def api_pod(self) -> dict[str, Any]:
        pods = self.get("pods", "-l", "app.kubernetes.io/component=api")["items"]
        running: list[dict[str, Any]] = [p for p in pods if p["status"].get("phase") == "Running"]
        assert len(running) == 1, [p["metadata"]["name"] for p in pods]
        return running[0]

    def api_restarts(self) -> int:
        statuses = self.api_pod()["status"].get("containerStatuses", [])
        return sum(int(s.get("restartCount", 0)) for s in statuses)

    def api_rss_bytes(self) -> int:
        """Resident memory of the API process (PID 1 of its container)."""
        name = self.api_pod()["metadata"]["name"]
        status = self.kubectl("exec", name, "--", "cat", "/proc/1/status")
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def wait_for_phase(self, job_id: str, phases: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        with self.client() as http:
            while time.monotonic() < deadline:
                job = http.get(f"/v1/jobs/{job_id}").json()
                if job["phase"] in phases:
                    return job
                time.sleep(1)
        raise TimeoutError(f"{job_id} not in {phases} after {timeout}s: {job}")


@contextmanager
def installed(cluster: LocalCluster, release: str, *helm_args: str) -> Iterator[Platform]:
    """The chart installed as `release` in the namespace of the same name, uninstalled after."""
    script = str(REPO / "hack" / "platform.sh")
    run(script, "install", release, release, *helm_args, cluster=cluster)
    try:
        platform = Platform(cluster, release, "", "")
        service = platform.get("svc", f"{release}-api")
        port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
        base_url = f"http://{service['spec']['clusterIP']}:{port}"
        platform = Platform(cluster, release, base_url, "")
        yield Platform(cluster, release, base_url, platform.create_key("tenant-a"))
    finally:
        helm = str(BIN / "helm")
        run(helm, "uninstall", release, "-n", release, "--wait", cluster=cluster, check=False)
