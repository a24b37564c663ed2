"""Operator at scale: 10,000 VideoJobs through Pending -> Running -> Succeeded on fake nodes.

    hack/tools.sh kwok && hack/tools.sh postgres
    .venv/bin/python bench/operator_scale.py [--n 10000] [--namespaces 4]

The local cluster (`make cluster-up`) gets --nodes fake nodes from KWOK (built through the Go
module proxy by `hack/tools.sh kwok`): kube-scheduler binds processor Pods to them and KWOK plays
the kubelet (bench/kwok/stages.yaml: Running after 0.5-1.5 s, exit 0 after 3-7 s more), so no
ffmpeg runs and the operator, the API server and MongoDB are what is measured. The fake nodes are
tainted, so nothing else lands on them; the operator's processor Pods get the matching
toleration and node selector (the chart's jobs.tolerations / jobs.nodeSelector).

The operator runs on the host (as in the operator integration tests) with a private versitygw and
FerretDB on a private PostgreSQL (bench/postgres.py: a pool above the operator's batch size, and
an index FerretDB's `_id` filter can use; `--mongo sqlite` runs the test suite's FerretDB on
SQLite, which stalls on the operator's first full batch, bench/ferretdb_batch.py), watching
--namespaces namespaces with --max-running slots each; --creators threads create the VideoJobs,
spread evenly over the namespaces, as fast as the API server takes them.

Measured, each from its own side:
- Job finished: the bench's watch sees the Job's Complete condition; VideoJob Succeeded: the
  bench's watch on VideoJobs; MongoDB Succeeded: the bench polls the database every
  --poll seconds for the jobs whose Job has finished and that it has not seen Succeeded yet
  (an `_id` query of a few hundred at most: polling every Succeeded document, as earlier runs
  did, took over a second per poll at 10,000 and added that to the figure).
- operator peak RSS (VmHWM) and CPU seconds; time from the first create to the last VideoJob
  Succeeded; VideoJobs left behind (not Succeeded when the bench gives up).
- watch stall: the slowest Job finished -> VideoJob status. A Job event that a stalled watch never
  delivers is only found by the resync (every RESYNC_SECONDS), so a worst case below that says
  every finish reached the operator through its watch. Also the operator's own /healthz age (time
  since its last watch event or resync round), polled every second.
Goals (issue 13): RSS <= 512 MiB, p99 Job finished -> status <= 5 s and -> MongoDB <= 5 s,
nothing left behind, no watch stall. Results: bench/results/operator_scale.json; the git commit
in it is the operator measured (run from a worktree of that commit to measure a clean tree).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "operator"), str(REPO)]

import kubernetes  # noqa: E402
import urllib3  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.integration.operator.conftest import (  # noqa: E402
    CRD_FILE,
    DB,
    KUBECONFIG,
    OperatorProcess,
    operator_env,
)
from tests.utils.servers import free_port, mongo_server, s3_server  # noqa: E402

from bench.postgres import ferretdb_on_postgres  # noqa: E402
from bench.results import (  # noqa: E402
    Goal,
    Recorder,
    percentile,
    process_cpu_seconds,
    py_spy_argv,
)
from vidpipe import constants  # noqa: E402
from vidpipe.events import EVENTS_COLLECTION  # noqa: E402

Body = dict[str, Any]
KWOK = REPO / "bin" / "kwok"
STAGES = REPO / "bench" / "kwok" / "stages.yaml"
BENCH_LABEL = "vidpipe.io/bench"
TAINT = {"key": BENCH_LABEL, "value": "kwok", "effect": "NoSchedule"}
TOLERATION = {"key": BENCH_LABEL, "operator": "Exists", "effect": "NoSchedule"}
RESYNC_SECONDS = 60.0


def spread(values: list[float]) -> list[float]:
    if not values:
        return []
    return (
        [min(values)]
        + [percentile(values, q / 10) for q in range(1, 11)]
        + [percentile(values, 0.99)]
    )


class Watch(threading.Thread):
    """First time each object of `kind` in `namespace` is done, keyed by its VideoJob's name.

    Keeps its resourceVersion across the periodic reconnects, so reconnecting does not re-list
    thousands of objects (which would load the API server the bench measures).
    """

    def __init__(self, api: Any, namespace: str, kind: str, done: Callable[[Body], bool]):
        super().__init__(daemon=True, name=f"watch-{kind}-{namespace}")
        self.api, self.namespace, self.kind, self.is_done = api, namespace, kind, done
        self.done: dict[str, float] = {}
        self.events = 0
        self.stop = threading.Event()

    def _list_fn(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self.kind == "jobs":
            return kubernetes.client.BatchV1Api(self.api).list_namespaced_job, (self.namespace,)
        custom = kubernetes.client.CustomObjectsApi(self.api)
        args = (constants.GROUP, constants.VERSION, self.namespace, constants.PLURAL)
        return custom.list_namespaced_custom_object, args

    def run(self) -> None:
        fn, args = self._list_fn()
        version: str | None = None
        while not self.stop.is_set():
            try:
                for raw in self._stream(fn, args, version):
                    version = raw["metadata"].get("resourceVersion") or version
            except ApiException as exc:
                if exc.status != 410:
                    raise
                version = None  # too old: start again from a fresh list
            except (urllib3.exceptions.HTTPError, OSError):
                time.sleep(1)  # the API server went away (restarted): resume where we were

    def _stream(
        self, fn: Callable[..., Any], args: tuple[Any, ...], version: str | None
    ) -> Iterator[Body]:
        kwargs: dict[str, Any] = {"timeout_seconds": 30, "_preload_content": False}
        if version:
            kwargs.update(resource_version=version, allow_watch_bookmarks=True)
        resp = fn(*args, watch=True, **kwargs)
        try:
            for line in resp:
                at = time.time()
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise ApiException(status=event["object"].get("code", 500))
                raw = event["object"]
                if event["type"] != "BOOKMARK":
                    self.events += 1
                    if self.is_done(raw):
                        self.done.setdefault(videojob_name(raw), at)
                yield raw
                if self.stop.is_set():
                    return
        finally:
            resp.release_conn()


def videojob_name(raw: Body) -> str:
    """A VideoJob's own name, or the name of the VideoJob that owns a Job (whatever the Job's
    name: the operator's naming may change)."""
    for ref in raw["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == constants.KIND:
            return str(ref["name"])
    return str(raw["metadata"]["name"])


def job_complete(raw: Body) -> bool:
    # SuccessCriteriaMet comes first (Kubernetes >= 1.31), Complete once the Pods are gone; the
    # operator acts on the first, so the Job counts as finished then.
    conds = (raw.get("status") or {}).get("conditions") or []
    return any(
        c["type"] in {"SuccessCriteriaMet", "Complete"} and c["status"] == "True" for c in conds
    )


def videojob_succeeded(raw: Body) -> bool:
    return bool((raw.get("status") or {}).get("phase") == "Succeeded")


class MongoPoll(threading.Thread):
    """When the database first holds phase Succeeded for each job, polled from the bench.

    Each poll asks only for the jobs `finished()` names (their Job has finished: the bench's
    watch saw it) that are not yet seen Succeeded, one `_id` at a time, so a poll costs the same
    at the 10,000th job as at the first and the figure's resolution stays the poll interval.
    Not one `$in` query: FerretDB pushes no `$in` down to PostgreSQL, so each poll decoded every
    document (mongo_poll_p50_seconds 0.22 at bc49ea5, 0.010 by `_id` at caee538), and the bench's
    own poll was the largest CPU load on FerretDB, slowing the writes it measures (run at
    bc49ea5, cpu_seconds_by_component).
    """

    def __init__(self, url: str, interval: float, finished: Callable[[], list[str]]):
        super().__init__(daemon=True, name="mongo-poll")
        self.client: MongoClient[Body] = MongoClient(url)
        self.coll = self.client[DB][constants.JOBS_COLLECTION]
        self.interval = interval
        self.finished = finished
        self.done: dict[str, float] = {}
        self.poll_seconds: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            start = time.time()
            waiting = [name for name in self.finished() if name not in self.done]
            for name in waiting:
                if self.coll.find_one({"_id": name, "phase": "Succeeded"}, {"_id": 1}):
                    self.done.setdefault(name, time.time())  # when the read found it: the latest
            self.poll_seconds.append(time.time() - start)
        self.client.close()


class HealthPoll(threading.Thread):
    """The operator's /healthz each second: the longest time it reported without activity."""

    def __init__(self, port: int):
        super().__init__(daemon=True, name="healthz")
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.max_age, self.failures = 0.0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    body = json.loads(resp.read())
                self.max_age = max(self.max_age, float(body["secondsSinceLastActivity"]))
            except (OSError, ValueError, KeyError):
                self.failures += 1  # not up yet, or 503 (stale): both count against it


def host_processes(command: str) -> dict[tuple[int, str], list[str]]:
    """(pid, start time) -> argv of each `command` process on this host (the local cluster runs
    its control plane here)."""
    found = {}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            # comm holds the first 15 characters (kube-controller-manager is longer).
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == command[:15]:
                start = (proc / "stat").read_text().rsplit(")", 1)[1].split()[19]
                argv = (proc / "cmdline").read_bytes().decode().split("\0")
                found[(int(proc.name), start)] = argv
    return found


def controller_limits() -> list[str]:
    """The running controller manager's client and Job-controller limits (flags absent: its
    defaults, qps 20, burst 30, 5 Job syncs): they pace how fast Jobs get their Pods."""
    found = []
    for argv in host_processes("kube-controller-manager").values():
        line = " ".join(argv)
        found += re.findall(r"--(?:kube-api-qps|kube-api-burst|concurrent-job-syncs)[= ]\S+", line)
    return sorted(found)


class ApiServerProbe(threading.Thread):
    """Seconds the API server did not answer, and how often it was restarted (the cluster is
    shared: other sessions' tests restart it, sometimes in under a second). A run with either is
    disturbed: its latencies include the outage and every watch starting over."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="apiserver-probe")
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=KUBECONFIG, client_configuration=config)
        config.retries = False  # a failed probe is the figure, not something to hide
        self.version = kubernetes.client.VersionApi(kubernetes.client.ApiClient(config))
        self.unreachable_seconds = 0.0
        self.restarts = 0
        self.stop = threading.Event()

    def run(self) -> None:
        seen = set(host_processes("kube-apiserver"))
        while not self.stop.wait(1.0):
            now = set(host_processes("kube-apiserver"))
            self.restarts += len(now - seen)
            seen = now or seen
            start = time.monotonic()
            try:
                self.version.get_code(_request_timeout=5)
            except (urllib3.exceptions.HTTPError, OSError, ApiException):
                self.unreachable_seconds += 1.0 + time.monotonic() - start


class VmPeak(threading.Thread):
    """Peak resident memory of a process (VmHWM), read until it exits."""

    def __init__(self, pid: int):
        super().__init__(daemon=True, name="rss")
        self.pid, self.peak_kib = pid, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))


class CpuByComponent(threading.Thread):
    """CPU seconds each part of the machine used during the run, per minute: where a slow
    finish's time went on 2 shared cores. Processes are grouped by name (/proc/<pid>/comm,
    15 characters), the operator and the bench by pid; `ferretdb` includes the local cluster's
    own (idle during the run) besides the bench's."""

    NAMES = (
        "kube-apiserver",
        "etcd",
        "kube-controller",
        "kube-scheduler",
        "kwok",
        "kueue",
        "ferretdb",
        "postgres",
        "containerd",
        "kubelet",
    )

    def __init__(self, pids: dict[str, int], every: float = 10.0):
        super().__init__(daemon=True, name="cpu")
        self.pids, self.every = pids, every
        self.stop = threading.Event()
        self.last: dict[int, float] = {}  # pid -> CPU seconds when last read
        self.minutes: dict[int, dict[str, float]] = {}
        self.start_time = time.monotonic()

    def _component(self, pid: int) -> str | None:
        for name, known in self.pids.items():
            if pid == known:
                return name
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return comm if comm in self.NAMES else None

    def sample(self, account: bool = True) -> None:
        """Read every process's CPU so far; `account`: add what it used since the last read (a
        process started since counts whole) to the current minute."""
        minute = int((time.monotonic() - self.start_time) // 60)
        row: dict[str, float] = self.minutes.setdefault(minute, {}) if account else {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            component = self._component(pid)
            if component is None:
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                used = process_cpu_seconds(pid)
                before = self.last.get(pid, 0.0)
                self.last[pid] = used
                row[component] = row.get(component, 0.0) + used - before

    def run(self) -> None:
        self.sample(account=False)  # what every process had used before the run
        while not self.stop.wait(self.every):
            self.sample()

    def totals(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for row in self.minutes.values():
            for name, seconds in row.items():
                found[name] = found.get(name, 0.0) + seconds
        return {name: round(seconds, 1) for name, seconds in sorted(found.items())}


@contextlib.contextmanager
def kwok_nodes(core: Any, count: int, log: Path) -> Iterator[list[str]]:
    """`count` tainted fake nodes managed by a KWOK controller on the host."""
    if not KWOK.exists():
        raise SystemExit(f"{KWOK} is missing: run `hack/tools.sh kwok` first")
    argv = [
        str(KWOK),
        f"--kubeconfig={KUBECONFIG}",
        f"--config={STAGES}",
        f"--manage-nodes-with-label-selector={BENCH_LABEL}=kwok",
        "--cidr=10.250.0.0/16",
        "--node-ip=10.250.0.1",
        "--node-lease-duration-seconds=40",
    ]
    names = [f"kwok-bench-{i}" for i in range(count)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            for name in names:  # left by an interrupted run
                with contextlib.suppress(ApiException):
                    core.delete_node(name)
            for name in names:
                core.create_node(
                    {
                        "metadata": {
                            "name": name,
                            "labels": {BENCH_LABEL: "kwok", "kubernetes.io/hostname": name},
                            "annotations": {"kwok.x-k8s.io/node": "fake"},
                        },
                        "spec": {"taints": [TAINT]},
                    }
                )
            deadline = time.monotonic() + 60
            while not all(node_ready(core, n) for n in names):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"fake nodes not Ready; see {log}")
                time.sleep(0.5)
            yield names
        finally:
            try:
                for name in names:
                    with contextlib.suppress(ApiException):
                        core.delete_node(name)
            finally:  # even when the API server is gone: never leave KWOK running
                proc.terminate()
                proc.wait(timeout=30)


def node_ready(core: Any, name: str) -> bool:
    conds = core.read_node_status(name).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def videojob(name: str) -> Body:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name},
        "spec": {
            "jobId": name,
            "owner": f"tenant-{name.split('-')[1]}",
            "source": {"bucket": "media", "key": f"sources/{name}/source"},
        },
    }


def apply_crd() -> None:
    """The committed CRD, as the operator tests and hack/platform.sh apply it (server-side)."""
    kubectl = [str(REPO / "bin" / "kubectl"), f"--kubeconfig={KUBECONFIG}"]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    crd = f"crd/{constants.CRD_NAME}"
    subprocess.run([*kubectl, "wait", "--for=condition=Established", crd], check=True)


def make_namespaces(core: Any, count: int) -> list[str]:
    run = secrets.token_hex(3)
    names = [f"bench-scale-{run}-{i}" for i in range(count)]
    for name in names:
        core.create_namespace({"metadata": {"name": name, "labels": {"vidpipe-bench": "scale"}}})
    return names


def delete_namespaces(core: Any, names: list[str], timeout: float) -> float:
    """Delete and wait until they are gone; seconds it took (garbage collection of it all)."""
    start = time.monotonic()
    for name in names:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name, propagation_policy="Background")
    while time.monotonic() - start < timeout:
        left = [n for n in names if namespace_exists(core, n)]
        if not left:
            break
        time.sleep(2)
    return time.monotonic() - start


def namespace_exists(core: Any, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def mongo_batches(port: int) -> dict[str, dict[str, float]]:
    """Per collection, the operator's MongoDB batches over the run (its /metrics): how many,
    their mean size and time, and how many took over a second."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in {
            "vidpipe_operator_mongo_batch_seconds",
            "vidpipe_operator_mongo_batch_writes",
        }:
            continue
        what = family.name.rsplit("_", 1)[1]
        for sample in family.samples:
            row = found.setdefault(sample.labels["collection"], {})
            if sample.name.endswith("_sum"):
                row[f"{what}_sum"] = row.get(f"{what}_sum", 0.0) + sample.value
            elif sample.name.endswith("_count") and what == "writes":
                row["batches"] = sample.value
            elif what == "seconds" and sample.labels.get("le") == "1.0":  # both outcomes
                row["at_most_1s"] = row.get("at_most_1s", 0.0) + sample.value
    summary = {}
    for collection, row in found.items():
        count = row.get("batches") or 1.0
        summary[collection] = {
            "batches": row.get("batches", 0.0),
            "mean_writes": round(row.get("writes_sum", 0.0) / count, 2),
            "mean_seconds": round(row.get("seconds_sum", 0.0) / count, 4),
            "over_1s": row.get("batches", 0.0) - row.get("at_most_1s", 0.0),
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="VideoJobs in all")
    parser.add_argument("--namespaces", type=int, default=4, help="tenant namespaces")
    parser.add_argument("--max-running", type=int, default=250, help="slots per namespace")
    parser.add_argument("--nodes", type=int, default=10, help="fake nodes (2,000 Pods each)")
    parser.add_argument("--creators", type=int, default=8, help="threads creating VideoJobs")
    parser.add_argument("--poll", type=float, default=0.25, help="MongoDB poll interval, s")
    parser.add_argument("--timeout", type=float, default=7200, help="give up after, s")
    parser.add_argument(
        "--tracemalloc",
        type=Path,
        help="write the operator's largest allocation sites at its peak here (bench/memtrace)",
    )
    parser.add_argument(
        "--mongo",
        choices=["postgresql", "sqlite"],
        default="postgresql",
        help="FerretDB's backend (sqlite: the test suite's, which stalls at about 1,000 jobs)",
    )
    parser.add_argument(
        "--profile", type=Path, help="write py-spy's collapsed stacks of the operator here"
    )
    args = parser.parse_args()
    # Stopped by SIGINT or SIGTERM, even when started in the background (where a shell ignores
    # SIGINT), the bench still deletes its namespaces, nodes and servers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    recorder = Recorder("operator_scale", arguments)
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=KUBECONFIG, client_configuration=config)
    # The cluster is shared: another session's test may restart the API server. Refused
    # connections are retried (nothing was sent, so nothing is sent twice).
    config.retries = urllib3.util.Retry(total=10, connect=10, read=0, status=0, backoff_factor=0.5)
    api = kubernetes.client.ApiClient(config)
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    work = Path(tempfile.mkdtemp(prefix="vidpipe-scale-"))
    for sub in ("s3", "mongo"):
        (work / sub).mkdir()
    mongo_context: Callable[[Path], contextlib.AbstractContextManager[str]] = (
        # Every collection the operator updates by `_id` (MongoDB indexes `_id` everywhere):
        # without its index, each event-log insert scanned the whole log (bench/postgres.py).
        functools.partial(
            ferretdb_on_postgres,
            indexed=((DB, constants.JOBS_COLLECTION), (DB, EVENTS_COLLECTION)),
        )
        if args.mongo == "postgresql"
        else mongo_server
    )
    health_port, metrics_port = free_port(), free_port()
    names = [f"s-{i % args.namespaces}-{i:05d}" for i in range(args.n)]
    with (
        s3_server(work / "s3") as s3,
        mongo_context(work / "mongo") as mongo_url,
        kwok_nodes(core, args.nodes, work / "kwok.log"),
    ):
        bucket = "bench-scale"
        apply_crd()
        s3.client().create_bucket(Bucket=bucket)
        namespaces = make_namespaces(core, args.namespaces)
        try:
            env = operator_env(
                namespaces[0],
                mongo_url,
                s3,
                bucket,
                VIDPIPE_OPERATOR_NAMESPACES=json.dumps(namespaces),
                VIDPIPE_OPERATOR_MAX_RUNNING_PER_NAMESPACE=str(args.max_running),
                VIDPIPE_OPERATOR_PROCESSOR_NODE_SELECTOR=json.dumps({BENCH_LABEL: "kwok"}),
                VIDPIPE_OPERATOR_PROCESSOR_TOLERATIONS=json.dumps([TOLERATION]),
                VIDPIPE_OPERATOR_BACKOFF_LIMIT="3",
                VIDPIPE_OPERATOR_RESYNC_SECONDS=str(RESYNC_SECONDS),
                VIDPIPE_OPERATOR_LIVENESS_PORT=str(health_port),
                VIDPIPE_OPERATOR_METRICS_PORT=str(metrics_port),
                VIDPIPE_OPERATOR_SLOT_RETRY_SECONDS="10",
            )
            # The operator tests' short Lease (quick failover tests) would make a busy operator
            # pause whenever a renewal runs late: the bench runs the default, as deployed.
            env.pop("VIDPIPE_OPERATOR_LEASE_DURATION_SECONDS", None)
            if args.tracemalloc:
                env["PYTHONPATH"] += os.pathsep + str(REPO / "bench" / "memtrace")
                env["VIDPIPE_BENCH_TRACEMALLOC"] = str(args.tracemalloc.resolve())
            operator = OperatorProcess(env, work / "operator.log")
            watches: list[Watch] = []
            try:
                for ns in namespaces:
                    watches.append(Watch(api, ns, "jobs", job_complete))
                    watches.append(Watch(api, ns, "videojobs", videojob_succeeded))
                probe = ApiServerProbe()
                probe.start()
                for w in watches:
                    w.start()
                operator.start()
                assert operator.proc is not None
                pid = operator.proc.pid
                rss = VmPeak(pid)
                rss.start()
                cpu_use = CpuByComponent({"operator": pid, "bench": os.getpid()})
                cpu_use.start()
                health = HealthPoll(health_port)
                health.start()
                if args.profile:
                    # Sampled from outside the process; --idle keeps threads blocked on I/O, where
                    # an operator spends its time, --threads tells the event loop's thread apart.
                    spy = [*py_spy_argv(args.profile, rate=20), "--idle", "--threads"]
                    spy += ["--pid", str(pid)]
                    subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

                def jobs_finished() -> list[str]:
                    # list() of a dict another thread grows: one C call, safe under the GIL.
                    return [n for w in watches if w.kind == "jobs" for n in list(w.done)]

                mongo = MongoPoll(mongo_url, args.poll, jobs_finished)
                mongo.start()
                time.sleep(3)  # Lease taken, watches started
                cpu_before = process_cpu_seconds(pid)
                start = time.time()

                def create(name: str) -> None:
                    ns = namespaces[int(name.split("-")[1])]
                    custom.create_namespaced_custom_object(
                        constants.GROUP, constants.VERSION, ns, constants.PLURAL, videojob(name)
                    )

                with ThreadPoolExecutor(args.creators) as pool:
                    list(pool.map(create, names))
                created = time.time() - start
                print(f"{args.n} VideoJobs created in {created:.1f}s", flush=True)

                def succeeded() -> dict[str, float]:
                    found: dict[str, float] = {}
                    for w in watches:
                        if w.kind == "videojobs":
                            found |= w.done
                    return found

                deadline = time.monotonic() + args.timeout
                last_report = 0.0
                while time.monotonic() < deadline:
                    done = succeeded()
                    if len(done) >= args.n and len(mongo.done) >= args.n:
                        break
                    if operator.proc.poll() is not None:
                        raise RuntimeError(f"the operator exited; see {operator.log_path}")
                    if time.monotonic() - last_report > 30:
                        last_report = time.monotonic()
                        print(
                            f"  {time.time() - start:.0f}s: {len(done)} Succeeded, "
                            f"{len(mongo.done)} in MongoDB, operator RSS peak "
                            f"{rss.peak_kib / 1024:.0f} MiB, API server unreachable "
                            f"{probe.unreachable_seconds:.0f}s, restarted {probe.restarts}x",
                            flush=True,
                        )
                    time.sleep(1)
                cpu = process_cpu_seconds(pid) - cpu_before
                batches = mongo_batches(metrics_port)
                total = max(succeeded().values(), default=start) - start
            finally:
                for w in watches:
                    w.stop.set()
                with contextlib.suppress(NameError):
                    mongo.stop.set()
                    rss.stop.set()
                    cpu_use.stop.set()
                    health.stop.set()
                    probe.stop.set()
                operator.stop()
            jobs_done: dict[str, float] = {}
            vj_done = succeeded()
            for w in watches:
                if w.kind == "jobs":
                    jobs_done |= w.done
            to_status, to_mongo = [], []
            # Job finished -> MongoDB per minute of the run (by when the Job finished): a tail
            # made by something periodic (the resync) shows as a pattern across the minutes.
            by_minute: dict[int, list[float]] = {}
            # The slowest finishes, with when their Job finished (seconds after the first create):
            # lines them up with the resync rounds and whatever else happened then.
            slowest: list[tuple[float, str, float, float]] = []
            for name in names:
                finished = jobs_done.get(name)
                if finished is None:
                    continue
                status = vj_done[name] - finished if name in vj_done else float("inf")
                in_mongo = mongo.done[name] - finished if name in mongo.done else float("inf")
                if name in vj_done:
                    to_status.append(status)
                if name in mongo.done:
                    to_mongo.append(in_mongo)
                    by_minute.setdefault(int((finished - start) // 60), []).append(in_mongo)
                slowest.append((max(status, in_mongo), name, finished - start, status))
            slowest.sort(reverse=True)
        except BaseException:  # interrupted or failed: leave no tenant namespaces behind
            delete_namespaces(core, namespaces, timeout=600)
            raise
        cleanup = delete_namespaces(core, namespaces, timeout=1800)
    left_behind = args.n - len(vj_done)
    figures = {
        "videojobs": float(args.n),
        "left_behind": float(left_behind),
        "all_succeeded_seconds": total,
        "created_seconds": created,
        "jobs_per_second": args.n / total if total else 0.0,
        "operator_peak_rss_mib": rss.peak_kib / 1024,
        "operator_cpu_seconds": cpu,
        "status_p50_seconds": percentile(to_status, 0.50) if to_status else float("inf"),
        "status_p99_seconds": percentile(to_status, 0.99) if to_status else float("inf"),
        "mongo_p50_seconds": percentile(to_mongo, 0.50) if to_mongo else float("inf"),
        "mongo_p99_seconds": percentile(to_mongo, 0.99) if to_mongo else float("inf"),
        "status_max_seconds": max(to_status, default=float("inf")),
        "mongo_max_seconds": max(to_mongo, default=float("inf")),
        "operator_healthz_max_age_seconds": health.max_age,
        "mongo_poll_p50_seconds": percentile(mongo.poll_seconds, 0.5),
        "api_server_unreachable_seconds": probe.unreachable_seconds,
        "api_server_restarts": float(probe.restarts),
        "namespace_cleanup_seconds": cleanup,
    }
    for key, value in figures.items():
        print(f"{key}: {value:.3f}")
    if args.profile or args.tracemalloc:  # both cost CPU: such a run records no figures
        print(f"written: {args.profile or args.tracemalloc}; no results file for this run")
        return 0 if left_behind == 0 else 1
    path = recorder.write(
        goals=[
            Goal("operator_peak_rss_mib", "<=", 512),
            Goal("status_p99_seconds", "<=", 5),
            Goal("mongo_p99_seconds", "<=", 5),
            Goal("left_behind", "<=", 0),
            # No watch stall: no finish waited for the resync to be found (docstring).
            Goal("status_max_seconds", "<", RESYNC_SECONDS),
        ],
        figures=figures,
        method={
            "nodes": "KWOK fake nodes (bench/kwok/stages.yaml): Running after 0.5-1.5 s, "
            "exit 0 after 3-7 s more",
            "job_finished": "the bench's watch sees the Job's Complete condition",
            "status": "the bench's watch sees VideoJob phase Succeeded",
            "mongo": f"the bench polls MongoDB every {args.poll} s for phase Succeeded, one read "
            "by _id (indexed) per job whose Job finished and not yet seen (resolution: the poll "
            "interval plus mongo_poll_p50_seconds)",
            "rss": "VmHWM of the operator process",
            "api_server": "probed every 1 s (a request, and its process on this host); unreachable "
            "seconds or restarts > 0: the run was disturbed (the shared cluster's API server was "
            "restarted by another session) and its latencies include that",
            "mongo_server": f"FerretDB ({args.mongo} backend) on the host, private to the run"
            + (", with a GIN index serving its _id filter" if args.mongo == "postgresql" else ""),
            "watch_stall": f"slowest Job finished -> VideoJob status below the resync interval "
            f"({RESYNC_SECONDS:g} s); /healthz polled every 1 s for its age",
        },
        # Deciles (and p99) rather than 2 x n raw values: the distribution without the bulk.
        rounds={
            "status_seconds_p0_p10_to_p100_p99": spread(to_status),
            "mongo_seconds_p0_p10_to_p100_p99": spread(to_mongo),
        },
        notes={
            "watch_events": {w.name: w.events for w in watches},
            "healthz_failed_polls": health.failures,
            "controller_manager_limits": controller_limits() or "its defaults",
            "mongo_batches": batches,
            "cpu_seconds_by_component": cpu_use.totals(),
            "cpu_seconds_by_minute": {
                str(minute): {name: round(seconds, 1) for name, seconds in sorted(row.items())}
                for minute, row in sorted(cpu_use.minutes.items())
            },
            "mongo_by_minute_count_p50_p99": {
                str(minute): [
                    len(lags),
                    round(percentile(lags, 0.5), 2),
                    round(percentile(lags, 0.99), 2),
                ]
                for minute, lags in sorted(by_minute.items())
            },
            "slowest_finishes": [
                {
                    "videojob": name,
                    "job_finished_at_seconds": round(at, 2),
                    "status_seconds": round(status, 3),
                    "slowest_of_status_and_mongo_seconds": round(worst, 3),
                }
                for worst, name, at, status in slowest[:10]
            ],
        },
    )
    print(Recorder.summary(path))
    return 0 if left_behind == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
