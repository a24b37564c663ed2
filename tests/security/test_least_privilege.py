"""A processor Pod can read only its source, write only its own outputs, and patch only its own
VideoJob's status (issue 11, finding 7). Tried for real: the operator runs on the host against the
local cluster, Jobs run the real processor image, S3 is the cluster's versitygw, and every
refusal below comes from the real S3 server or kube-apiserver.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.integration.operator.conftest import (
    CRD_FILE,
    Cluster,
    OperatorProcess,
    operator_env,
    wait_for,
)
from tests.utils.cluster import REPO, LocalCluster, local_cluster
from tests.utils.servers import S3Server
from vidpipe import constants, keys
from vidpipe_operator.access import build_role, build_role_binding
from vidpipe_operator.jobspec import ACCESS_KEY, job_name

pytestmark = pytest.mark.security

RENDITIONS = {"renditions": [{"name": "240p", "height": 240}], "storyboard": {"enabled": False}}


def _image_tag() -> str:
    done = subprocess.run(
        [str(REPO / "hack" / "images.sh"), "tag"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Setup:
    local: LocalCluster
    api: kubernetes.client.ApiClient
    cluster: Cluster
    namespace: str
    bucket: str
    s3: S3Server
    operator: OperatorProcess
    first: str
    second: str

    def admin_s3(self) -> Any:
        return self.s3.client()

    def access(self, videojob: str) -> dict[str, Any]:
        secret = self.cluster.core.read_namespaced_secret(job_name(videojob), self.namespace)
        document: dict[str, Any] = json.loads(base64.b64decode(secret.data[ACCESS_KEY]))
        return document


def _apply_crd(api: kubernetes.client.ApiClient) -> None:
    import yaml

    api.call_api(
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{constants.CRD_NAME}",
        "PATCH",
        query_params=[("fieldManager", "vidpipe-tests"), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml"},
        body=yaml.safe_load(CRD_FILE.read_text()),
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    ext = kubernetes.client.ApiextensionsV1Api(api)

    def established() -> bool:
        got = ext.read_custom_resource_definition(constants.CRD_NAME)
        return any(
            c.type == "Established" and c.status == "True" for c in got.status.conditions or []
        )

    wait_for("the CRD to be established", established, timeout=30)


def _video(path: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


def _finished(cluster: Cluster, name: str) -> bool:
    return cluster.status(name).get("phase") in {"Succeeded", "Failed"}


@pytest.fixture(scope="module")
def setup(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    local = local_cluster()
    api = kubernetes.config.new_client_from_config(config_file=str(local.kubeconfig))
    _apply_crd(api)
    namespace = f"vjsec-{secrets.token_hex(3)}"
    core = kubernetes.client.CoreV1Api(api)
    # Nothing prepared for the processor: no ServiceAccount, no S3 Secret. The operator makes
    # what each Job needs.
    core.create_namespace({"metadata": {"name": namespace, "labels": {"vidpipe-test": "security"}}})
    env = local.env
    # The operator on the host reaches the cluster's S3 on loopback; Pods on the bridge address.
    pod_endpoint = env["VIDPIPE_S3_ENDPOINT_URL"]
    s3 = S3Server(
        f"http://127.0.0.1:{urlsplit(pod_endpoint).port}",
        env["AWS_ACCESS_KEY_ID"],
        env["AWS_SECRET_ACCESS_KEY"],
    )
    bucket = env["VIDPIPE_S3_BUCKET"]
    overrides = operator_env(
        namespace,
        mongo_url,
        s3,
        bucket,
        VIDPIPE_OPERATOR_PROCESSOR_IMAGE=f"localhost/vidpipe-processor:{_image_tag()}",
        VIDPIPE_OPERATOR_PROCESSOR_S3_ENDPOINT_URL=pod_endpoint,
        VIDPIPE_OPERATOR_PROCESSOR_UID="10001",
        VIDPIPE_OPERATOR_PROCESSOR_CPU_REQUEST="100m",
        VIDPIPE_OPERATOR_PROCESSOR_CPU_LIMIT="1",
        VIDPIPE_OPERATOR_PROCESSOR_MEMORY_REQUEST="128Mi",
        VIDPIPE_OPERATOR_PROCESSOR_MEMORY_LIMIT="1Gi",
        VIDPIPE_OPERATOR_PROCESSOR_WORK_DIR_SIZE="1Gi",
    )
    overrides.pop("VIDPIPE_OPERATOR_PROCESSOR_COMMAND")  # the image's own entrypoint
    operator = OperatorProcess(overrides, tmp_path_factory.mktemp("operator") / "operator.log")
    operator.start()
    cluster = Cluster(api, namespace)
    suffix = secrets.token_hex(3)
    first, second = f"sec-a-{suffix}", f"sec-b-{suffix}"
    video = _video(tmp_path_factory.mktemp("media") / "clip.mp4")
    client = s3.client()
    try:
        for name in (first, second):
            client.upload_file(str(video), bucket, keys.source_key(name))
            cluster.create_videojob(
                name,
                owner="security",
                source={"bucket": bucket, "key": keys.source_key(name)},
                outputs=RENDITIONS,
            )
        for name in (first, second):
            wait_for(
                f"{name} to finish",
                partial(_finished, cluster, name),
                timeout=240,
                on_timeout=operator.log_tail,
            )
            assert cluster.status(name)["phase"] == "Succeeded", (
                cluster.status(name),
                operator.log_tail(),
            )
        yield Setup(local, api, cluster, namespace, bucket, s3, operator, first, second)
    finally:
        operator.stop()
        for name in (first, second):
            for key in [keys.source_key(name)] + [
                o["Key"]
                for o in client.list_objects_v2(Bucket=bucket, Prefix=keys.output_prefix(name)).get(
                    "Contents", []
                )
            ]:
                client.delete_object(Bucket=bucket, Key=key)
        core.delete_namespace(namespace, propagation_policy="Background")


def test_real_processor_succeeds_with_only_presigned_urls(setup: Setup) -> None:
    status = setup.cluster.status(setup.first)
    assert status["phase"] == "Succeeded"
    outputs = set(status["outputs"])
    assert keys.output_key(setup.first, "240p.mp4") in outputs
    head = setup.admin_s3().head_object(
        Bucket=setup.bucket, Key=keys.output_key(setup.first, keys.MANIFEST_NAME)
    )
    assert head["ContentLength"] > 0
    # Progress reached the VideoJob through the Pod's own token (the processor's field manager).
    videojob = setup.cluster.get(setup.first) or {}
    managers = {(m["manager"], m.get("subresource")) for m in videojob["metadata"]["managedFields"]}
    assert (constants.FIELD_MANAGER_PROCESSOR, "status") in managers
    assert videojob["status"]["progress"] == 100
    # The processor never logs a URL (a credential).
    (pod,) = setup.cluster.pods(f"batch.kubernetes.io/job-name={job_name(setup.first)}")
    logs = setup.cluster.core.read_namespaced_pod_log(pod.metadata.name, setup.namespace)
    assert "job succeeded" in logs
    assert "X-Amz-" not in logs and "Signature" not in logs


def test_processor_container_has_no_s3_keys(setup: Setup) -> None:
    (pod,) = setup.cluster.pods(f"batch.kubernetes.io/job-name={job_name(setup.first)}")
    spec = setup.api.sanitize_for_serialization(pod.spec)
    (container,) = spec["containers"]
    names = {e["name"] for e in container.get("env", [])}
    assert not [n for n in names if n.startswith("AWS_")], names
    assert "envFrom" not in container
    assert "secretKeyRef" not in json.dumps(container)
    assert spec["serviceAccountName"] == job_name(setup.first)
    secrets_mounted = [v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v]
    assert secrets_mounted == [job_name(setup.first)]
    # The URLs are in the Secret only: not in the Job, the Pod or the VideoJob.
    job = setup.cluster.batch.read_namespaced_job(job_name(setup.first), setup.namespace)
    for body in (setup.api.sanitize_for_serialization(job), spec, setup.cluster.get(setup.first)):
        assert "X-Amz-Signature" not in json.dumps(body)


def _fetch(method: str, url: str, body: bytes = b"") -> httpx.Response:
    headers = {"Content-Length": str(len(body))} if method == "PUT" else {}
    return httpx.request(method, url, content=body or None, headers=headers, timeout=30)


def test_job_urls_cannot_reach_other_objects(setup: Setup) -> None:
    mine, theirs = setup.access(setup.first), setup.access(setup.second)
    own_source = mine["source"]["url"]
    # Control: the Job's own URL works, so the refusals below are about scope, not reachability.
    assert _fetch("GET", own_source).status_code == 200
    put = mine["outputs"]["240p.mp4"]["url"]
    forged = {
        "another job's source": own_source.replace(
            keys.source_key(setup.first), keys.source_key(setup.second)
        ),
        "a listing of the bucket": own_source.split(keys.source_key(setup.first))[0]
        + "?"
        + own_source.split("?", 1)[1],
    }
    for what, url in forged.items():
        response = _fetch("GET", url)
        assert response.status_code == 403, (what, response.status_code, response.text[:300])
    outside = {
        "another job's output": put.replace(
            keys.output_key(setup.first, "240p.mp4"), keys.output_key(setup.second, "240p.mp4")
        ),
        "the other job's source": put.replace(
            keys.output_key(setup.first, "240p.mp4"), keys.source_key(setup.second)
        ),
        "a new key": put.replace(keys.output_key(setup.first, "240p.mp4"), "evil/x"),
    }
    for what, url in outside.items():
        response = _fetch("PUT", url, b"overwritten")
        assert response.status_code == 403, (what, response.status_code, response.text[:300])
    # Its read URL cannot write, its write URL cannot delete.
    assert _fetch("PUT", own_source, b"overwritten").status_code == 403
    assert _fetch("DELETE", put).status_code == 403
    # Nothing was changed by any of the attempts.
    s3 = setup.admin_s3()
    other = s3.get_object(Bucket=setup.bucket, Key=keys.output_key(setup.second, "240p.mp4"))
    assert other["Body"].read() != b"overwritten"
    source = s3.get_object(Bucket=setup.bucket, Key=keys.source_key(setup.second))
    assert source["Body"].read() != b"overwritten"
    assert s3.list_objects_v2(Bucket=setup.bucket, Prefix="evil/").get("KeyCount", 0) == 0
    # And the other job's Secret is a different set of URLs, not a shared key.
    assert theirs["source"]["url"] != own_source


def _as(setup: Setup, account: str) -> kubernetes.client.ApiClient:
    """An API client authenticated as `account` by a real TokenRequest (10 minutes)."""
    request = {"spec": {"audiences": [], "expirationSeconds": 600}}
    token = setup.cluster.core.create_namespaced_service_account_token(
        account, setup.namespace, request
    ).status.token
    admin = setup.api.configuration
    config = kubernetes.client.Configuration()
    config.host = admin.host
    config.ssl_ca_cert = admin.ssl_ca_cert
    config.verify_ssl = admin.verify_ssl
    config.api_key = {"authorization": f"Bearer {token}"}
    return kubernetes.client.ApiClient(config)


def test_job_token_cannot_patch_another_videojob(setup: Setup) -> None:
    client = _as(setup, job_name(setup.first))
    custom = kubernetes.client.CustomObjectsApi(client)
    g, v, p = constants.GROUP, constants.VERSION, constants.PLURAL
    patch = {"status": {"progress": 1}}
    # Control: its own VideoJob's status may be patched (dry run: nothing changes).
    custom.patch_namespaced_custom_object_status(
        g, v, setup.namespace, p, setup.first, patch, dry_run="All"
    )
    attempts: dict[str, Callable[[], Any]] = {
        "patch another VideoJob's status": lambda: custom.patch_namespaced_custom_object_status(
            g, v, setup.namespace, p, setup.second, patch, dry_run="All"
        ),
        "patch its own spec": lambda: custom.patch_namespaced_custom_object(
            g, v, setup.namespace, p, setup.first, {"spec": {"cancel": True}}, dry_run="All"
        ),
        "list VideoJobs": lambda: custom.list_namespaced_custom_object(g, v, setup.namespace, p),
        "read its Secret": lambda: kubernetes.client.CoreV1Api(client).read_namespaced_secret(
            job_name(setup.first), setup.namespace
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ApiException) as caught:
            attempt()
        assert caught.value.status == 403, (what, caught.value.status)
    client.close()


def test_per_job_objects_are_collected_with_the_videojob(setup: Setup) -> None:
    name = job_name(setup.second)
    core, rbac = setup.cluster.core, kubernetes.client.RbacAuthorizationV1Api(setup.api)
    reads: dict[str, Callable[[], Any]] = {
        "Secret": lambda: core.read_namespaced_secret(name, setup.namespace),
        "ServiceAccount": lambda: core.read_namespaced_service_account(name, setup.namespace),
        "Role": lambda: rbac.read_namespaced_role(name, setup.namespace),
        "RoleBinding": lambda: rbac.read_namespaced_role_binding(name, setup.namespace),
    }
    for read in reads.values():
        owners = read().metadata.owner_references
        assert [(o.kind, o.name) for o in owners] == [("VideoJob", setup.second)]
    setup.cluster.delete(setup.second)

    def gone() -> bool:
        for read in reads.values():
            try:
                read()
                return False
            except ApiException as exc:
                if exc.status != 404:
                    raise
        return True

    wait_for("the garbage collector to remove the per-job objects", gone, timeout=60)


def test_chart_operator_role_may_grant_the_per_job_role(setup: Setup, tmp_path: Path) -> None:
    """Kubernetes refuses a Role granting what its creator lacks: the chart's operator Role must
    hold get/patch on videojobs/status. Proven with the chart's rendered Role, bound to a
    throwaway ServiceAccount, creating the per-job Role and RoleBinding for real."""
    import yaml

    rendered = subprocess.run(
        [str(REPO / "bin" / "helm"), "template", "t", str(REPO / "deploy" / "helm" / "vidpipe"),
         "--kube-version", "1.33.0", "--set", f"jobs.namespace={setup.namespace}",
         "--show-only", "templates/rbac.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (role,) = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Role" and d["metadata"]["name"] == "t-vidpipe-operator"
    ]
    rbac = kubernetes.client.RbacAuthorizationV1Api(setup.api)
    core = setup.cluster.core
    core.create_namespaced_service_account(setup.namespace, {"metadata": {"name": "chart-op"}})
    rbac.create_namespaced_role(setup.namespace, role)
    rbac.create_namespaced_role_binding(
        setup.namespace,
        {
            "metadata": {"name": "chart-op"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                        "name": role["metadata"]["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": "chart-op",
                          "namespace": setup.namespace}],
        },
    )  # fmt: skip
    videojob = setup.cluster.get(setup.first)
    assert videojob is not None
    as_operator = kubernetes.client.RbacAuthorizationV1Api(_as(setup, "chart-op"))

    def granted() -> bool:
        try:
            as_operator.create_namespaced_role(setup.namespace, _renamed(build_role(videojob)))
        except ApiException as exc:
            if exc.status == 403:
                return False  # the RoleBinding may take a moment to reach the authorizer
            raise
        return True

    wait_for("the chart's operator Role to grant the per-job Role", granted, timeout=20)
    as_operator.create_namespaced_role_binding(
        setup.namespace, _renamed(build_role_binding(videojob))
    )


def _renamed(manifest: dict[str, Any]) -> dict[str, Any]:
    meta = {**manifest["metadata"], "name": manifest["metadata"]["name"] + "-chart"}
    out = {**manifest, "metadata": meta}
    if "roleRef" in out:
        out["roleRef"] = {**out["roleRef"], "name": meta["name"]}
    return out
