"""The real cluster for operator tests: CRD applied, a namespace per module, the operator running.

The cluster comes from `hack/cluster.sh up` (KUBECONFIG, default .local/cluster/kubeconfig). An
unreachable cluster fails loudly: these tests are the proof the operator works on a real one.
The operator runs on the host as a subprocess (`python -m vidpipe_operator`), so tests can kill
it with SIGKILL; it uses the session's S3 and MongoDB-protocol servers.

Which processor the Job Pods run:
- The real processor image (`processor_image`, built from this tree by `hack/images.sh load`)
  wherever the outcome depends on what the processor does: its exit classes (65 bad input, 75
  retryable), its termination message, progress, outputs and the manifest
  (test_real_processor.py, test_real_processor_outputs.py). Those Pods reach a private versitygw
  on the node bridge address (`pod_s3`), which a test can stop and start again.
- The busybox stub (STUB_IMAGE) only where a scripted exit or lifetime is the point: the Job's
  lifecycle, queue, cancel, restarts, Lease, eviction and deadline tests need Pods that exit with
  a chosen code at a chosen time, which a real transcode cannot give. What each stub Pod does is
  chosen by the VideoJob's `owner` (see STUB_SCRIPT).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from pymongo import MongoClient

from tests.utils.cluster import local_cluster
from tests.utils.servers import S3Server, ServerProcess, s3_process
from vidpipe import constants

REPO = Path(__file__).resolve().parents[3]
CRD_FILE = REPO / "crds" / f"{constants.CRD_NAME}.yaml"
KUBECONFIG = os.environ.get("KUBECONFIG") or str(REPO / ".local" / "cluster" / "kubeconfig")
STUB_IMAGE = os.environ.get("VIDPIPE_STUB_IMAGE", "localhost/vidpipe-stub:latest")
DB = "vidpipe_optest"
# The processor image's user (Dockerfile `USER 10001`).
PROCESSOR_UID = "10001"

# The stub processor: behaviour by owner. Exit codes are the processor's contract
# (vidpipe.exitcodes): 65 bad input, 75 retryable. "evictable": every Pod lives 20 s and succeeds,
# long enough to be evicted while running, short enough for its replacement to finish.
STUB_SCRIPT = r"""
case "$VIDPIPE_JOB_SPEC" in
  *'"owner":"bad"'*)
    echo '{"code":"not_a_video","message":"stub: not a video"}' > /dev/termination-log; exit 65;;
  *'"owner":"flaky"'*)
    echo '{"code":"storage_unavailable","message":"stub: S3 down"}' >/dev/termination-log
    exit 75;;
  *'"owner":"slow"'*) exec sleep 600;;
  *'"owner":"medium"'*) sleep 6; exit 0;;
  *'"owner":"evictable"'*) sleep 20; exit 0;;
  *) sleep 1; exit 0;;
esac
"""


@pytest.fixture(scope="session")
def kube() -> kubernetes.client.ApiClient:
    """An API client for the real cluster with the generated CRD applied and established."""
    if not Path(KUBECONFIG).exists():
        pytest.fail(f"no kubeconfig at {KUBECONFIG}: run `hack/cluster.sh up` first")
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=KUBECONFIG, client_configuration=config)
    # The test's own reads ride out an API server restart (test_apiserver_restart.py and the
    # outage tests make one): only refused connections are retried, so nothing is sent twice.
    config.retries = urllib3.util.Retry(total=8, connect=8, read=0, status=0, backoff_factor=0.5)
    api = kubernetes.client.ApiClient(config)
    try:
        kubernetes.client.VersionApi(api).get_code()
    except Exception as exc:
        pytest.fail(f"Kubernetes API server unreachable via {KUBECONFIG}: {exc}")
    crd = yaml.safe_load(CRD_FILE.read_text())
    ext = kubernetes.client.ApiextensionsV1Api(api)
    # Server-side apply: creates or updates to exactly the committed CRD.
    ext.api_client.call_api(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{constants.CRD_NAME}",
        "PATCH",
        query_params=[("fieldManager", "vidpipe-tests"), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml"},
        body=crd,
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = ext.read_custom_resource_definition(constants.CRD_NAME)
        conds = {c.type: c.status for c in (got.status.conditions or [])}
        if conds.get("Established") == "True":
            return api
        time.sleep(0.2)
    pytest.fail(f"CRD {constants.CRD_NAME} not established after 30s")


@pytest.fixture(scope="module")
def namespace(kube: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh, empty namespace: the operator itself creates what each Job's Pod needs (its
    ServiceAccount, Role, RoleBinding and presigned-URL Secret)."""
    core = kubernetes.client.CoreV1Api(kube)
    name = f"vjop-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"vidpipe-test": "operator"}}})
    yield name
    custom = kubernetes.client.CustomObjectsApi(kube)
    # The operator adds no finalizer, but a test adds the one earlier versions used: drop any
    # left, or namespace deletion would wait for them forever.
    items = custom.list_namespaced_custom_object(
        constants.GROUP, constants.VERSION, name, constants.PLURAL
    )["items"]
    for item in items:
        try:
            custom.patch_namespaced_custom_object(
                constants.GROUP,
                constants.VERSION,
                name,
                constants.PLURAL,
                item["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
    core.delete_namespace(name, propagation_policy="Background")


@dataclass
class OperatorProcess:
    """The operator as a child process; restartable, killable with SIGKILL."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _logs: list[Any] = field(default_factory=list)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        out = self.log_path.open("ab")
        self._logs.append(out)
        self.starts += 1
        out.write(f"\n===== start #{self.starts} =====\n".encode())
        out.flush()
        self.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "python"), "-m", "vidpipe_operator"],
            cwd=REPO,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process neither runs nor renews its Lease, as in a long GC pause or a
        frozen node, yet keeps its connections and wakes up where it stopped."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for out in self._logs:
            out.close()
        self._logs.clear()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def operator_env(
    namespace: str, mongo_url: str, s3: S3Server, bucket: str, **overrides: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "KUBECONFIG": KUBECONFIG,
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "operator")),
        "VIDPIPE_OPERATOR_NAMESPACES": json.dumps([namespace]),
        "VIDPIPE_OPERATOR_PROCESSOR_IMAGE": STUB_IMAGE,
        "VIDPIPE_OPERATOR_PROCESSOR_IMAGE_PULL_POLICY": "Never",
        "VIDPIPE_OPERATOR_PROCESSOR_COMMAND": json.dumps(["/bin/sh", "-c", STUB_SCRIPT]),
        "VIDPIPE_OPERATOR_PROCESSOR_CPU_REQUEST": "10m",
        "VIDPIPE_OPERATOR_PROCESSOR_CPU_LIMIT": "100m",
        "VIDPIPE_OPERATOR_PROCESSOR_MEMORY_REQUEST": "16Mi",
        "VIDPIPE_OPERATOR_PROCESSOR_MEMORY_LIMIT": "32Mi",
        "VIDPIPE_OPERATOR_TERMINATION_GRACE_PERIOD_SECONDS": "2",
        "VIDPIPE_OPERATOR_BACKOFF_LIMIT": "1",
        "VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE": "3",
        "VIDPIPE_OPERATOR_SLOT_RETRY_SECONDS": "3",
        "VIDPIPE_OPERATOR_RESYNC_SECONDS": "30",
        "VIDPIPE_S3_BUCKET": bucket,
        "VIDPIPE_S3_ENDPOINT_URL": s3.endpoint_url,
        "VIDPIPE_OPERATOR_PROCESSOR_S3_ENDPOINT_URL": "http://s3.invalid:9000",
        "VIDPIPE_S3_ACCESS_KEY_ID": s3.access_key,
        "VIDPIPE_S3_SECRET_ACCESS_KEY": s3.secret_key,
        "VIDPIPE_MONGO_URL": mongo_url,
        "VIDPIPE_MONGO_DATABASE": DB,
        "VIDPIPE_OPERATOR_LEASE_NAMESPACE": namespace,
        "VIDPIPE_OPERATOR_LEASE_DURATION_SECONDS": "6",
        "VIDPIPE_OPERATOR_IDENTITY": f"test-{namespace}",
        "VIDPIPE_OPERATOR_METRICS_PORT": "0",
        "VIDPIPE_OPERATOR_LIVENESS_PORT": "0",
    }
    env.update(overrides)
    return env


def real_processor_env(
    namespace: str,
    mongo_url: str,
    s3: S3Server,
    bucket: str,
    image: str,
    **overrides: str,
) -> dict[str, str]:
    """operator_env for Jobs that run the real processor image against `s3` (an S3 the Pods
    reach: its endpoint goes into the presigned URLs). Limits sized for small clips on 2 cores."""
    env = operator_env(
        namespace,
        mongo_url,
        s3,
        bucket,
        VIDPIPE_OPERATOR_PROCESSOR_IMAGE=image,
        VIDPIPE_OPERATOR_PROCESSOR_S3_ENDPOINT_URL=s3.endpoint_url,
        VIDPIPE_OPERATOR_PROCESSOR_UID=PROCESSOR_UID,
        VIDPIPE_OPERATOR_PROCESSOR_CPU_REQUEST="100m",
        VIDPIPE_OPERATOR_PROCESSOR_CPU_LIMIT="1",
        VIDPIPE_OPERATOR_PROCESSOR_MEMORY_REQUEST="128Mi",
        VIDPIPE_OPERATOR_PROCESSOR_MEMORY_LIMIT="768Mi",
        VIDPIPE_OPERATOR_PROCESSOR_WORK_DIR_SIZE="1Gi",
    )
    env.pop("VIDPIPE_OPERATOR_PROCESSOR_COMMAND")  # the image's own entrypoint
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def processor_image(kube: kubernetes.client.ApiClient) -> str:
    """The real processor image for this tree, already in the node's containerd.

    `make test` loads it first (`hack/images.sh load`); VIDPIPE_TEST_PROCESSOR_IMAGE overrides the
    name (e.g. to an image loaded before an unrelated edit changed the tree's tag).
    """
    image = os.environ.get("VIDPIPE_TEST_PROCESSOR_IMAGE")
    if not image:
        tag = subprocess.run(
            [str(REPO / "hack" / "images.sh"), "tag"], capture_output=True, text=True, check=True
        ).stdout.strip()
        image = f"localhost/vidpipe-processor:{tag}"
    nodes = kubernetes.client.CoreV1Api(kube).list_node().items
    present = {name for n in nodes for i in n.status.images or [] for name in i.names or []}
    if image not in present:
        pytest.fail(f"{image} is not in the cluster: run `hack/images.sh load` first")
    return image


@dataclass(frozen=True)
class PodS3:
    """A private versitygw that processor Pods reach (on the node bridge address) and that a test
    may stop and start again (`process.down()`), with one bucket for sources and outputs."""

    server: S3Server
    process: ServerProcess
    bucket: str


@pytest.fixture(scope="module")
def pod_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodS3]:
    # The address the cluster's own S3 listens on for Pods (hack/cluster.sh): the node bridge.
    bridge = urlsplit(local_cluster().env["VIDPIPE_S3_ENDPOINT_URL"]).hostname or "10.88.0.1"
    server, process = s3_process(tmp_path_factory.mktemp("pod-s3"), host=bridge)
    process.start()
    try:
        bucket = f"vjop-{secrets.token_hex(4)}"
        server.client().create_bucket(Bucket=bucket)
        yield PodS3(server, process, bucket)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def output_bucket(s3: S3Server) -> str:
    name = f"vjop-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    return name


@contextmanager
def running_operator(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator process for one module's fixture: started, then stopped after its tests."""
    proc = OperatorProcess(env, tmp_path_factory.mktemp("operator") / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def operator(
    request: pytest.FixtureRequest,
    namespace: str,
    mongo_url: str,
    s3: S3Server,
    output_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The module's operator; a module sets `OPERATOR_ENV` (settings by variable name) to run
    it differently, e.g. with more slots."""
    overrides: dict[str, str] = getattr(request.module, "OPERATOR_ENV", {})
    env = operator_env(namespace, mongo_url, s3, output_bucket, **overrides)
    with running_operator(env, tmp_path_factory) as proc:
        yield proc


@pytest.fixture(scope="module")
def jobs_collection(mongo_url: str) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    yield client[DB][constants.JOBS_COLLECTION]
    client.close()


class Cluster:
    """Small helpers over the kubernetes client for one test namespace."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str):
        self.api, self.namespace = api, namespace
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.batch = kubernetes.client.BatchV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)

    def create_videojob(
        self, name: str, owner: str = "ok", finalizers: list[str] | None = None, **spec: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "metadata": {"name": name, "finalizers": finalizers or []},
            "spec": {
                "jobId": name,
                "owner": owner,
                "source": {"bucket": "media", "key": f"sources/{name}/source"},
                **spec,
            },
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL, body
        )
        return created

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.custom.get_namespaced_custom_object(
                constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return got

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            constants.GROUP,
            constants.VERSION,
            self.namespace,
            constants.PLURAL,
            name,
            {"spec": spec},
        )

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        """A merge patch through the status subresource (what the operator or processor sends)."""
        self.custom.patch_namespaced_custom_object_status(
            constants.GROUP,
            constants.VERSION,
            self.namespace,
            constants.PLURAL,
            name,
            {"status": status},
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL, name
        )

    def status(self, name: str) -> dict[str, Any]:
        body = self.get(name) or {}
        status: dict[str, Any] = body.get("status") or {}
        return status

    def jobs(self) -> list[Any]:
        items: list[Any] = self.batch.list_namespaced_job(self.namespace).items
        return items

    def pods(self, selector: str = "") -> list[Any]:
        items: list[Any] = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector
        ).items
        return items

    def events(self, name: str) -> list[Any]:
        items: list[Any] = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return items


@pytest.fixture(scope="module")
def cluster(kube: kubernetes.client.ApiClient, namespace: str) -> Cluster:
    return Cluster(kube, namespace)


def make_media(path: Path, seconds: float, size: str = "320x240", *, video: bool = True) -> Path:
    """A small real clip made by ffmpeg: testsrc2 H.264 with an AAC tone, or the tone alone."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"] if video else []
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"] if video else []
    subprocess.run(
        ["ffmpeg", "-v", "error", *inputs, "-f", "lavfi", "-i", "sine=frequency=440",
         "-t", str(seconds), *codecs, "-c:a", "aac", "-y", str(path)],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 60,
    interval: float = 0.3,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Poll `check` until it returns something truthy (test-side only; the operator watches)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{extra}")
        time.sleep(interval)
