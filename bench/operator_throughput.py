"""Operator throughput on the real cluster: how much slower than creating the objects by hand?

    .venv/bin/python bench/operator_throughput.py [--n 200] [--rounds 3] [--latency-n 100]

1. Baselines: a bare kubernetes-client loop creates, for N jobs, exactly what the operator creates
   per VideoJob (the access Secret with presigned URLs, ServiceAccount, Role, RoleBinding, then
   the Job; the operator's own builders, without owner references), timed from the first
   create until a watch has seen all N Jobs. Twice: with `--creators` threads (the concurrency
   the operator side's client uses; each thread one job at a time), and with one thread.
   Responses are not turned into client model objects (`_preload_content=False`), as the
   operator does not either: the baseline is a careful client, not a slow one.
2. Operator: `--creators` threads create N VideoJobs with the operator running on the host
   (limit = N); timed from the first create until the watch has seen all N Jobs.
   Goal: operator / concurrent baseline <= 1.5 (the sequential ratio is reported beside it).
   Pods are pinned to a node label no node has (the operator's processor_node_selector): on a
   2-core single-node cluster, 200 Pods starting at once would measure containerd, not the
   operator, and would load one side only.
   The three sides alternate for --rounds rounds (order reversed every other round) after one
   unrecorded warm-up round of each with --warmup-n jobs; figures are medians.
3. Latency: --latency-n VideoJobs whose stub Pods really run and exit 0; for every Job, from the
   watch seeing it complete to the VideoJob phase (seen by a watch) and the MongoDB document
   (seen by polling the database every --poll-ms, i.e. when a reader could see it, not when the
   operator queued the write) both saying Succeeded. Goal: p95 < 2 s.
Figures go to bench/results/operator_throughput.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "operator"), str(REPO)]


import kubernetes  # noqa: E402
import urllib3  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.integration.operator.conftest import (  # noqa: E402
    KUBECONFIG,
    STUB_IMAGE,
    OperatorProcess,
    operator_env,
)
from tests.integration.processor.helpers import presigner  # noqa: E402
from tests.utils.servers import S3Server, mongo_server, s3_server  # noqa: E402

from bench.results import Goal, Recorder, alternate, median, process_cpu_seconds  # noqa: E402
from vidpipe import constants  # noqa: E402
from vidpipe.models import VideoJobSpec  # noqa: E402
from vidpipe_operator.access import (  # noqa: E402
    access_document,
    build_access_secret,
    build_role,
    build_role_binding,
    build_service_account,
    url_lifetime,
)
from vidpipe_operator.jobspec import build_job  # noqa: E402
from vidpipe_operator.settings import OperatorSettings  # noqa: E402

Body = dict[str, Any]
STUB_COMMAND = ["/bin/sh", "-c", "exit 0"]
NOWHERE = {"vidpipe-bench/nowhere": "true"}
OUTPUT_BUCKET = "bench-out"


def make_namespace(core: Any, prefix: str) -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"vidpipe-bench": "operator"}}})
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


class Disturbed(Exception):
    """The shared cluster's API server restarted during a round (other work restarts it)."""


def repeated(action: Callable[[], float], side: str, redone: list[str]) -> Callable[[], float]:
    """`action`, run again (up to twice more) when the API server went away during it."""

    def run() -> float:
        for attempt in range(3):
            try:
                return action()
            except (Disturbed, urllib3.exceptions.HTTPError, ApiException) as exc:
                if (isinstance(exc, ApiException) and (exc.status or 0) < 500) or attempt == 2:
                    raise
                print(f"{side}: the API server went away mid-round ({exc!r:.80}); again")
                redone.append(side)
                time.sleep(10)
        raise AssertionError("unreachable")

    return run


def drained(response: Any) -> None:
    """Read an unparsed response to its end and give its connection back to the pool (an
    unread body left on a pooled connection breaks the next request sent on it)."""
    response.read()
    response.release_conn()


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
        self.broken = False

    def run(self) -> None:
        w = RawWatch()
        if self.kind == "jobs":
            fn: Any = kubernetes.client.BatchV1Api(self.api).list_namespaced_job
            args: tuple[Any, ...] = (self.namespace,)
        else:
            fn = kubernetes.client.CustomObjectsApi(self.api).list_namespaced_custom_object
            args = (constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL)
        while not self.stop.is_set():
            try:
                self._follow(w, fn, args)
            except (ApiException, urllib3.exceptions.HTTPError):
                self.broken = True  # the API server went away: this round means nothing
                time.sleep(1)

    def _follow(self, w: RawWatch, fn: Any, args: tuple[Any, ...]) -> None:
        if not self.stop.is_set():
            for event in w.stream(fn, *args, timeout_seconds=5, _request_timeout=10):
                at = time.time()
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

    def wait_for(self, n: int, timeout: float) -> float | None:
        """When the n-th object was first seen (wall clock), or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while len(self.added) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        if self.broken:
            raise Disturbed("a watch broke off")
        return max(self.added.values()) if len(self.added) >= n else None


class MongoPoller(threading.Thread):
    """When each job's document is first read back as Succeeded, polling every `interval`.

    The time is taken after the query that first returned it: an upper bound, late by at most
    one interval plus one query, never earlier than a reader could have seen the write.
    """

    def __init__(self, collection: Any, names: list[str], interval: float):
        super().__init__(daemon=True)
        self.collection, self.names, self.interval = collection, names, interval
        self.done: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        remaining = set(self.names)
        while remaining and not self.stop.is_set():
            query = {"_id": {"$in": sorted(remaining)}, "phase": "Succeeded"}
            found = [str(doc["_id"]) for doc in self.collection.find(query, {"_id": 1})]
            at = time.time()
            for name in found:
                self.done[name] = at
                remaining.discard(name)
            time.sleep(self.interval)


class Bench:
    """The cluster clients, servers and settings every round uses."""

    def __init__(self, args: argparse.Namespace, mongo_url: str, s3: S3Server, work: Path):
        self.args, self.mongo_url, self.s3, self.work = args, mongo_url, s3, work
        self.api = kubernetes.config.new_client_from_config(config_file=KUBECONFIG)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.batch = kubernetes.client.BatchV1Api(self.api)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.operator_cpu: list[float] = []
        # What the operator is configured with on the other side: the same manifests.
        self.settings = OperatorSettings(
            processor_image=STUB_IMAGE,
            processor_image_pull_policy="Never",
            processor_command=STUB_COMMAND,
            processor_node_selector=NOWHERE,
            s3_bucket=OUTPUT_BUCKET,
        )
        self.presign = presigner(s3, "http://s3.invalid:9000").presign

    # -- the baselines ----------------------------------------------------------------------

    def manifests(self, namespace: str, name: str, uid: str) -> list[Body]:
        """The operator's five objects for one job (Secret, SA, Role, RoleBinding, Job)."""
        vj = videojob(name)
        vj["metadata"].update(namespace=namespace, uid=uid)
        spec = VideoJobSpec.model_validate(vj["spec"])
        seconds = url_lifetime(spec, self.settings)
        document = access_document(spec, OUTPUT_BUCKET, self.presign, seconds, datetime.now(UTC))
        out = [
            build_access_secret(vj, document),
            build_service_account(vj),
            build_role(vj),
            build_role_binding(vj),
            build_job(vj, self.settings),
        ]
        for manifest in out:
            # No owner (no VideoJob exists here): nothing may collect them early.
            del manifest["metadata"]["ownerReferences"]
            manifest["metadata"]["labels"][constants.LABEL_MANAGED_BY] = "bench"
        return out

    def create(self, namespace: str, manifest: Body) -> None:
        create: Callable[..., Any] = {
            "Secret": self.core.create_namespaced_secret,
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
            "Job": self.batch.create_namespaced_job,
        }[manifest["kind"]]
        drained(create(namespace, manifest, _preload_content=False))

    def baseline(self, n: int, threads: int) -> float:
        """Seconds from the first create until the watch has seen all n Jobs."""
        namespace = make_namespace(self.core, "bench-base")
        jobs = Watcher(self.api, namespace, "jobs")
        jobs.start()
        time.sleep(0.5)

        def one(i: int) -> None:
            # Built inside the timed part, presigning included: the operator does this work too.
            for manifest in self.manifests(namespace, f"base-{i:04d}", f"uid-{i}"):
                self.create(namespace, manifest)

        try:
            start = time.time()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, range(n)))
            last = jobs.wait_for(n, self.args.timeout)
            return (last - start) if last is not None else float("inf")
        finally:
            jobs.stop.set()
            delete_namespace(self.core, namespace)

    # -- the operator -----------------------------------------------------------------------

    def run_operator(self, namespace: str, limit: int, log: Path, **env: str) -> OperatorProcess:
        """The operator on the host with the stub processor command, watching `namespace`."""
        full_env = operator_env(
            namespace,
            self.mongo_url,
            self.s3,
            OUTPUT_BUCKET,
            VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE=str(limit),
            VIDPIPE_OPERATOR_PROCESSOR_COMMAND=json.dumps(STUB_COMMAND),
            **env,
        )
        operator = OperatorProcess(full_env, log)
        operator.start()
        time.sleep(3)  # take the Lease, start watching
        return operator

    def create_videojobs(self, namespace: str, names: list[str]) -> float:
        start = time.time()
        with ThreadPoolExecutor(self.args.creators) as pool:
            list(
                pool.map(
                    lambda name: drained(
                        self.custom.create_namespaced_custom_object(
                            constants.GROUP,
                            constants.VERSION,
                            namespace,
                            constants.PLURAL,
                            videojob(name),
                            _preload_content=False,
                        )
                    ),
                    names,
                )
            )
        return start

    def operator_round(self, n: int) -> float:
        """Seconds from the first VideoJob create until the watch has seen all n Jobs."""
        namespace = make_namespace(self.core, "bench-op")
        operator = self.run_operator(
            namespace,
            n,
            self.work / "operator-throughput.log",
            VIDPIPE_OPERATOR_PROCESSOR_NODE_SELECTOR=json.dumps(NOWHERE),
        )
        try:
            jobs = Watcher(self.api, namespace, "jobs")
            jobs.start()
            time.sleep(0.5)
            assert operator.proc is not None
            cpu_before = process_cpu_seconds(operator.proc.pid)
            start = self.create_videojobs(namespace, [f"tp-{i:04d}" for i in range(n)])
            last = jobs.wait_for(n, self.args.timeout)
            self.operator_cpu.append(process_cpu_seconds(operator.proc.pid) - cpu_before)
            return (last - start) if last is not None else float("inf")
        finally:
            operator.stop()
            delete_namespace(self.core, namespace)

    # -- latency with real Pods -------------------------------------------------------------

    def latency(self, m: int) -> dict[str, list[float]]:
        namespace = make_namespace(self.core, "bench-lat")
        operator = self.run_operator(namespace, m, self.work / "operator-latency.log")
        client: MongoClient[Body] = MongoClient(self.mongo_url, tz_aware=True)
        try:
            jobs = Watcher(self.api, namespace, "jobs")
            vjs = Watcher(self.api, namespace, "videojobs")
            names = [f"lat-{i:04d}" for i in range(m)]
            coll = client["vidpipe_optest"][constants.JOBS_COLLECTION]
            mongo = MongoPoller(coll, names, self.args.poll_ms / 1000)
            for thread in (jobs, vjs, mongo):
                thread.start()
            time.sleep(0.5)
            self.create_videojobs(namespace, names)
            deadline = time.monotonic() + self.args.timeout
            while len(mongo.done) < m and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(0.5)
            for thread in (jobs, vjs, mongo):
                thread.stop.set()
            out: dict[str, list[float]] = {"both": [], "videojob": [], "mongodb": []}
            for name in names:
                finished = jobs.done.get(f"vj-{name}")
                cr, db = vjs.done.get(name), mongo.done.get(name)
                if finished is not None and cr is not None and db is not None:
                    out["both"].append(max(cr, db) - finished)
                    out["videojob"].append(cr - finished)
                    out["mongodb"].append(db - finished)
            return out
        finally:
            client.close()
            operator.stop()
            delete_namespace(self.core, namespace)


def delete_namespace(core: Any, namespace: str) -> None:
    """Delete and wait until it is gone, so its teardown does not load the next measurement.

    Other work on the shared cluster restarts the API server now and then: connection errors
    are waited out and the delete is sent again until it has been taken.
    """
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            ns = core.read_namespace(namespace)
            if ns.metadata.deletion_timestamp is None:
                core.delete_namespace(namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(1)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--latency-n", type=int, default=100)
    parser.add_argument("--creators", type=int, default=8, help="client threads, both sides")
    parser.add_argument("--rounds", type=int, default=3, help="recorded rounds per side")
    parser.add_argument("--warmup-n", type=int, default=20, help="jobs in each warm-up round")
    parser.add_argument("--poll-ms", type=int, default=50, help="MongoDB polling interval")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    recorder = Recorder("operator_throughput", vars(args))
    n = args.n
    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-"))
    for sub in ("s3", "mongo"):
        (work / sub).mkdir()
    with s3_server(work / "s3") as s3, mongo_server(work / "mongo") as mongo_url:
        s3.client().create_bucket(Bucket=OUTPUT_BUCKET)
        bench = Bench(args, mongo_url, s3, work)
        sides: dict[str, Callable[[int], float]] = {
            "sequential": lambda k: bench.baseline(k, 1),
            "concurrent": lambda k: bench.baseline(k, args.creators),
            "operator": bench.operator_round,
        }
        redone: list[str] = []
        for name, side in sides.items():
            repeated(functools.partial(side, args.warmup_n), name, redone)()
        bench.operator_cpu.clear()
        full: dict[str, Callable[[], float]] = {
            name: repeated(functools.partial(side, n), name, redone) for name, side in sides.items()
        }
        measured = alternate(full, args.rounds, warmup=0)
        for r in range(args.rounds):
            print(
                f"round {r + 1}: {n} jobs; sequential {measured['sequential'][r]:.2f}s, "
                f"concurrent {measured['concurrent'][r]:.2f}s, operator "
                f"{measured['operator'][r]:.2f}s (operator CPU {bench.operator_cpu[r]:.2f}s)"
            )
        lat = bench.latency(args.latency_n)
    seq, conc, op = (median(measured[s]) for s in ("sequential", "concurrent", "operator"))
    figures = {
        "n": float(n),
        "sequential_s": seq,
        "concurrent_s": conc,
        "operator_s": op,
        "ratio_operator_to_concurrent": op / conc,
        "ratio_operator_to_sequential": op / seq,
        "operator_cpu_s_median": median(bench.operator_cpu),
        "latency_n": float(len(lat["both"])),
    }
    for what, values in lat.items():
        if values:
            figures[f"latency_{what}_median_s"] = statistics.median(values)
            figures[f"latency_{what}_p95_s"] = p95(values)
            figures[f"latency_{what}_max_s"] = max(values)
    path = recorder.write(
        goals=[
            Goal("ratio_operator_to_concurrent", "<=", 1.5),
            Goal("latency_both_p95_s", "<", 2.0),
        ],
        figures=figures,
        method={
            "rounds": args.rounds,
            "warmup": f"one unrecorded round of every side with {args.warmup_n} jobs",
            "order": "sequential, concurrent, operator; reversed every other round",
            "statistic": "median of each side's rounds; ratios of medians; latency over jobs",
            "timing": "first create until a watch saw all N Jobs, on every side",
            "baselines": f"the operator's 5 objects per job by a bare client, {args.creators} "
            "threads (concurrent) or 1 (sequential), no response models",
            "operator": f"{args.creators} threads create N VideoJobs; operator on the host",
            "latency": "Job complete (watch) -> VideoJob Succeeded (watch) and MongoDB "
            f"document Succeeded (read back by polling every {args.poll_ms} ms)",
        },
        rounds={
            **{f"{name}_s": values for name, values in measured.items()},
            "operator_cpu_s": bench.operator_cpu,
            **{f"latency_{what}_s": values for what, values in lat.items()},
        },
        notes={
            "cluster": "the local single-node cluster (hack/cluster.sh), shared",
            "rounds_repeated_after_an_api_server_restart": redone,
        },
    )
    print(
        f"median of {args.rounds} rounds, {n} jobs: sequential {seq:.2f}s, concurrent "
        f"{conc:.2f}s, operator {op:.2f}s; operator/sequential {op / seq:.2f}"
    )
    if lat["both"]:
        print(
            f"Job finished -> VideoJob + MongoDB: n={len(lat['both'])} median "
            f"{figures['latency_both_median_s']:.3f}s p95 {figures['latency_both_p95_s']:.3f}s; "
            f"VideoJob p95 {figures['latency_videojob_p95_s']:.3f}s, MongoDB p95 "
            f"{figures['latency_mongodb_p95_s']:.3f}s"
        )
    print(Recorder.summary(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
