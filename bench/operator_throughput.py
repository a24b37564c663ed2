"""Operator throughput on the real cluster: how much slower than creating Jobs by hand?

    .venv/bin/python bench/operator_throughput.py [--n 200] [--rounds 3]

1. Baseline: a bare kubernetes-client loop creates N Jobs (the manifest build_job makes) in a
   scratch namespace; time T_bare.
2. Operator: N VideoJobs are created at once (a small thread pool) in another namespace with the
   operator running on the host (limit = N); time T_op until all N Jobs exist, as seen by a watch.
   Goal: T_op / T_bare <= 1.5. In steps 1 and 2 the Pods are pinned to a node label no node
   has (the operator's processor_node_selector): on a 2-core single-node cluster, 200 Pods
   starting at once would measure containerd, not the operator, and would load one side only.
   Steps 1 and 2 alternate for --rounds rounds and the ratio is of the medians: one round on a
   shared 2-core machine varies by +-20%.
3. Latency: --latency-n VideoJobs whose stub Pods really run and exit 0; for every Job, from the
   watch seeing it complete to both the VideoJob phase and the MongoDB document saying
   Succeeded. Goal: p95 < 2 s.
The ratio is printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "operator"), str(REPO)]


import kubernetes  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.integration.operator.conftest import (  # noqa: E402
    KUBECONFIG,
    STUB_IMAGE,
    OperatorProcess,
    operator_env,
)
from tests.utils.servers import mongo_server, s3_server  # noqa: E402

from vidpipe import constants  # noqa: E402
from vidpipe_operator.jobs import build_job  # noqa: E402
from vidpipe_operator.settings import OperatorSettings  # noqa: E402

Body = dict[str, Any]
STUB_COMMAND = ["/bin/sh", "-c", "exit 0"]


def make_namespace(core: Any, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"vidpipe-bench": "operator"}}})
    core.create_namespaced_service_account(name, {"metadata": {"name": "vidpipe-processor"}})
    core.create_namespaced_secret(
        name,
        {
            "metadata": {"name": "vidpipe-s3"},
            "stringData": {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
        },
    )
    # The ServiceAccount admission plugin refuses Pods until the account exists in its cache.
    time.sleep(1)
    return name


def videojob(name: str) -> Body:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": {
            "jobId": name,
            "owner": "bench",
            "source": {"bucket": "media", "key": f"sources/{name}/source"},
        },
    }


NOWHERE = {"vidpipe-bench/nowhere": "true"}


def baseline(batch: Any, namespace: str, n: int) -> float:
    # The very manifest the operator would build, stub command included, so both sides create
    # Jobs that start the same Pods.
    settings = OperatorSettings(
        processor_image=STUB_IMAGE,
        processor_image_pull_policy="Never",
        processor_command=STUB_COMMAND,
        processor_node_selector=NOWHERE,
    )
    manifests = []
    for i in range(n):
        vj = videojob(f"base-{i}")
        vj["metadata"].update(namespace=namespace, uid=f"uid-{i}")
        job = build_job(vj, settings)
        del job["metadata"]["ownerReferences"]  # no owner: nothing to collect them early
        job["metadata"]["labels"][constants.LABEL_MANAGED_BY] = "bench"
        manifests.append(job)
    start = time.perf_counter()
    for job in manifests:
        batch.create_namespaced_job(namespace, job)
    return time.perf_counter() - start


class RawWatch(kubernetes.watch.Watch):  # type: ignore[misc]
    """Events with plain dicts: building client model objects would cost the CPU we measure."""

    def get_return_type(self, func: Any) -> None:
        return None


class Watcher(threading.Thread):
    """Records when each Job appears and completes, and when each VideoJob succeeds."""

    def __init__(self, api: Any, namespace: str, kind: str):
        super().__init__(daemon=True)
        self.api, self.namespace, self.kind = api, namespace, kind
        self.added: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        w = RawWatch()
        if self.kind == "jobs":
            fn: Any = kubernetes.client.BatchV1Api(self.api).list_namespaced_job
            args: tuple[Any, ...] = (self.namespace,)
        else:
            fn = kubernetes.client.CustomObjectsApi(self.api).list_namespaced_custom_object
            args = (constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL)
        while not self.stop.is_set():
            for event in w.stream(fn, *args, timeout_seconds=5, _request_timeout=10):
                at = time.time()  # wall clock: comparable with MongoDB's updated_at
                raw = event["object"]
                name = raw["metadata"]["name"]
                self.added.setdefault(name, at)
                status = raw.get("status") or {}
                if self.kind == "jobs":
                    conds = status.get("conditions") or []
                    if any(
                        c["type"] in {"Complete", "SuccessCriteriaMet"} and c["status"] == "True"
                        for c in conds
                    ):
                        self.done.setdefault(name, at)
                elif status.get("phase") == "Succeeded":
                    self.done.setdefault(name, at)
                if self.stop.is_set():
                    break


def create_all(custom: Any, namespace: str, names: list[str], threads: int) -> float:
    start = time.time()  # wall clock, like the watchers
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda name: custom.create_namespaced_custom_object(
                    constants.GROUP, constants.VERSION, namespace, constants.PLURAL, videojob(name)
                ),
                names,
            )
        )
    return start


def run_operator(
    namespace: str, limit: int, mongo_url: str, s3: Any, bucket: str, log: Path, **env: str
) -> OperatorProcess:
    """The operator on the host with the stub processor command, watching `namespace`."""
    full_env = operator_env(
        namespace,
        mongo_url,
        s3,
        bucket,
        VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE=str(limit),
        VIDPIPE_OPERATOR_PROCESSOR_COMMAND=json.dumps(STUB_COMMAND),
        **env,
    )
    operator = OperatorProcess(full_env, log)
    operator.start()
    time.sleep(3)  # take the Lease, start watching
    return operator


def drain(core: Any, namespace: str, operator: OperatorProcess) -> None:
    """Stop the operator, then delete the namespace and wait until it is gone."""
    operator.stop()
    delete_namespace(core, namespace)


def bare_round(api: Any, core: Any, batch: Any, n: int) -> float:
    namespace = make_namespace(core, "bench-base")
    # The same watch as on the operator side, so the bench's own load is alike on both.
    jobs = Watcher(api, namespace, "jobs")
    jobs.start()
    time.sleep(0.5)
    try:
        return baseline(batch, namespace, n)
    finally:
        jobs.stop.set()
        delete_namespace(core, namespace)


def operator_round(
    api: Any,
    core: Any,
    custom: Any,
    n: int,
    args: argparse.Namespace,
    mongo_url: str,
    s3: Any,
    bucket: str,
    work: Path,
) -> float:
    """Seconds from the first VideoJob create until the watch has seen all n Jobs."""
    namespace = make_namespace(core, "bench-op")
    operator = run_operator(
        namespace,
        n,
        mongo_url,
        s3,
        bucket,
        work / "operator-throughput.log",
        VIDPIPE_OPERATOR_PROCESSOR_NODE_SELECTOR=json.dumps(NOWHERE),
    )
    try:
        jobs = Watcher(api, namespace, "jobs")
        jobs.start()
        time.sleep(0.5)
        assert operator.proc is not None
        cpu_before = cpu_seconds(operator.proc.pid)
        start = create_all(custom, namespace, [f"tp-{i:04d}" for i in range(n)], args.creators)
        t_created = time.time() - start
        deadline = time.monotonic() + args.timeout
        while len(jobs.added) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        jobs.stop.set()
        cpu = cpu_seconds(operator.proc.pid) - cpu_before
        t_op = max(jobs.added.values()) - start if len(jobs.added) >= n else float("inf")
        print(
            f"  operator: {n} VideoJobs created in {t_created:.2f}s; all {n} Jobs existed "
            f"after {t_op:.2f}s; operator CPU meanwhile {cpu:.2f}s"
        )
        return t_op
    finally:
        drain(core, namespace, operator)


def delete_namespace(core: Any, namespace: str) -> None:
    """Delete and wait until it is gone, so its teardown does not load the next measurement."""
    with contextlib.suppress(ApiException):
        core.delete_namespace(namespace, propagation_policy="Background")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency-n", type=int, default=100)
    parser.add_argument("--creators", type=int, default=8, help="threads creating VideoJobs")
    parser.add_argument("--rounds", type=int, default=3, help="bare/operator rounds (median)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    n = args.n
    api = kubernetes.config.new_client_from_config(config_file=KUBECONFIG)
    core, batch = kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-"))
    for sub in ("s3", "mongo"):
        (work / sub).mkdir()
    with s3_server(work / "s3") as s3, mongo_server(work / "mongo") as mongo_url:
        bucket = "bench-out"
        s3.client().create_bucket(Bucket=bucket)

        # 1 and 2, alternating, so drift on a shared machine hits both sides alike
        t_bares: list[float] = []
        t_ops: list[float] = []
        for r in range(1, args.rounds + 1):
            t_bare = bare_round(api, core, batch, n)
            t_op = operator_round(api, core, custom, n, args, mongo_url, s3, bucket, work)
            t_bares.append(t_bare)
            t_ops.append(t_op)
            print(
                f"round {r}: bare loop {t_bare:.2f}s for {n} Jobs; operator {t_op:.2f}s until "
                f"all {n} Jobs existed (ratio {t_op / t_bare:.2f})"
            )

        # 3. latency with real Pods
        m = args.latency_n
        lat_ns = make_namespace(core, "bench-lat")
        operator = run_operator(lat_ns, m, mongo_url, s3, bucket, work / "operator-latency.log")
        try:
            jobs = Watcher(api, lat_ns, "jobs")
            vjs = Watcher(api, lat_ns, "videojobs")
            jobs.start()
            vjs.start()
            time.sleep(0.5)
            names = [f"lat-{i:04d}" for i in range(m)]
            create_all(custom, lat_ns, names, args.creators)
            client: MongoClient[Body] = MongoClient(mongo_url, tz_aware=True)
            coll = client["vidpipe_optest"][constants.JOBS_COLLECTION]
            # When MongoDB said Succeeded: the operator's `updated_at` of that write (the last
            # one for a finished job). Read afterwards, so the bench adds no load meanwhile.
            mongo_done: dict[str, float] = {}
            deadline = time.monotonic() + args.timeout
            while len(mongo_done) < m and time.monotonic() < deadline:
                time.sleep(2)
                query = {"phase": "Succeeded", "_id": {"$in": names}}
                for doc in coll.find(query, {"_id": 1, "updated_at": 1}):
                    mongo_done[str(doc["_id"])] = doc["updated_at"].timestamp()
            client.close()
            time.sleep(0.5)
            jobs.stop.set()
            vjs.stop.set()
            lat, lat_cr, lat_db = [], [], []
            for name in names:
                finished = jobs.done.get(f"vj-{name}")
                cr, db = vjs.done.get(name), mongo_done.get(name)
                if finished is not None and cr is not None and db is not None:
                    lat.append(max(cr, db) - finished)
                    lat_cr.append(cr - finished)
                    lat_db.append(db - finished)
            if lat:
                print(
                    f"  of which VideoJob status alone: median {statistics.median(lat_cr):.3f}s "
                    f"p95 {p95(lat_cr):.3f}s; MongoDB alone: median "
                    f"{statistics.median(lat_db):.3f}s p95 {p95(lat_db):.3f}s"
                )
                print(
                    f"Job finished -> VideoJob + Mongo updated: n={len(lat)} "
                    f"median {statistics.median(lat):.3f}s p95 {p95(lat):.3f}s "
                    f"max {max(lat):.3f}s (goal p95 < 2s)"
                )
            else:
                print("no completed jobs measured")
        finally:
            drain(core, lat_ns, operator)

    t_bare, t_op = statistics.median(t_bares), statistics.median(t_ops)
    print(
        f"median of {args.rounds} rounds: bare loop {t_bare:.2f}s, operator {t_op:.2f}s; "
        f"ratio (operator time to {n} Jobs / bare loop): {t_op / t_bare:.2f} (goal <= 1.5)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
