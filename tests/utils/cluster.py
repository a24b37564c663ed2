"""Access to the local cluster started by `hack/cluster.sh up` (its kubeconfig and service env)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".local" / "cluster"


@dataclass(frozen=True)
class LocalCluster:
    kubeconfig: Path
    env: dict[str, str]

    @property
    def namespace(self) -> str:
        return self.env["VIDPIPE_JOBS_NAMESPACE"]

    @property
    def s3_endpoint_for_pods(self) -> str:
        return self.env["VIDPIPE_S3_ENDPOINT_URL"]

    @property
    def mongo_url(self) -> str:
        return self.env["VIDPIPE_MONGO_URL"]


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def local_cluster() -> LocalCluster:
    """The running local cluster; raises (never skips) when it is not up."""
    kubeconfig, env = STATE / "kubeconfig", STATE / "env"
    if not kubeconfig.exists() or not env.exists():
        raise RuntimeError(f"no local cluster at {STATE}: run `make cluster-up` first")
    return LocalCluster(kubeconfig=kubeconfig, env=read_env(env))
