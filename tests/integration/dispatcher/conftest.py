"""The dispatcher as a real process (`python -m vidpipe_dispatcher`) against the session's
FerretDB, delivering to a real receiver process (receiver.py) that verifies every request with
the Standard Webhooks reference library. Events go into MongoDB with `outbox_insert`, exactly as
the operator and the API write them; schedules are shortened through the settings."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from tests.utils.servers import REPO, free_port, wait_for_port
from vidpipe.events import (
    EVENTS_COLLECTION,
    WEBHOOKS_COLLECTION,
    EventType,
    JobEvent,
    WebhookEndpoint,
    WebhookSecret,
    job_event,
    outbox_insert,
)
from vidpipe.webhooks import new_secret

Doc = dict[str, Any]
RECEIVER = Path(__file__).with_name("receiver.py")
# Short enough for tests, long enough that a busy 2-core machine does not time attempts out.
FAST = {
    "RETRY_SCHEDULE_SECONDS": json.dumps([0.2] * 12),
    "RETRY_JITTER": "0.2",
    "TIMEOUT_SECONDS": "5",
    "CLAIM_SECONDS": "8",
    "POLL_SECONDS": "0.1",
}


def wait_until(check: Callable[[], bool], timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Receiver:
    def __init__(self, workdir: Path, secrets_: list[str], **options: str) -> None:
        self.port = free_port()
        self.file = workdir / f"received-{self.port}.jsonl"
        self.file.touch()
        argv = [sys.executable, str(RECEIVER), str(self.port), str(self.file)]
        for s in secrets_:
            argv += ["--secret", s]
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", value]
        self.log = (workdir / f"receiver-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        wait_for_port(self.port, self.proc)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def records(self) -> list[Doc]:
        lines = self.file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def delivered_ids(self) -> set[str]:
        """Ids answered 2xx and verified: what the receiver's application accepted."""
        return {r["id"] for r in self.records() if r["status"] < 300 and r["verified"]}

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


class DispatcherProcess:
    def __init__(self, workdir: Path, mongo_url: str, database: str, **settings: str) -> None:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "dispatcher")),
            "VIDPIPE_MONGO_URL": mongo_url,
            "VIDPIPE_MONGO_DATABASE": database,
            "VIDPIPE_DISPATCHER_METRICS_PORT": str(self.metrics_port),
            **{f"VIDPIPE_DISPATCHER_{k}": v for k, v in {**FAST, **settings}.items()},
        }
        self.env = env
        self.log_path = workdir / f"dispatcher-{self.metrics_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vidpipe_dispatcher"], env=self.env, stdout=log, stderr=log
            )
        wait_for_port(self.metrics_port, self.proc)

    def kill(self) -> None:
        """SIGKILL: no clean-up of claims, attempts in flight cut off."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def db(mongo_url: str, request: pytest.FixtureRequest) -> Iterator[Database[Doc]]:
    """A database of its own per test: no test sees another's events or deliveries."""
    client: MongoClient[Doc] = MongoClient(mongo_url, tz_aware=True)
    name = f"disp_{secrets.token_hex(4)}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(secrets_: list[str], **options: str) -> Receiver:
        started.append(Receiver(tmp_path, secrets_, **options))
        return started[-1]

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def dispatchers(
    tmp_path: Path, mongo_url: str, db: Database[Doc]
) -> Iterator[Callable[..., DispatcherProcess]]:
    started: list[DispatcherProcess] = []

    def start(**settings: str) -> DispatcherProcess:
        started.append(DispatcherProcess(tmp_path, mongo_url, db.name, **settings))
        return started[-1]

    yield start
    for d in started:
        d.stop()


Receiving = Callable[..., tuple[WebhookEndpoint, Receiver]]


@pytest.fixture
def receiving(db: Database[Doc], receivers: Callable[..., Receiver]) -> Receiving:
    """`receiving(path, **options)`: an endpoint of alice's at `path` on a new receiver that
    holds its secret (options: receiver.py's)."""

    def make(path: str, **options: str) -> tuple[WebhookEndpoint, Receiver]:
        secret = WebhookSecret(value=new_secret(), created_at=datetime.now(UTC))
        rx = receivers([secret.value], **options)
        return add_endpoint(db, rx.url(path), secrets_=[secret]), rx

    return make


def add_endpoint(
    db: Database[Doc],
    url: str,
    *,
    owner: str = "alice",
    secrets_: list[WebhookSecret] | None = None,
    event_types: list[EventType] | None = None,
) -> WebhookEndpoint:
    now = datetime.now(UTC)
    fields: Doc = {}
    if event_types is not None:
        fields["event_types"] = event_types
    endpoint = WebhookEndpoint(
        id=f"wh_{secrets.token_hex(6)}",
        owner=owner,
        url=url,
        secrets=secrets_ or [WebhookSecret(value=new_secret(), created_at=now)],
        created_at=now,
        updated_at=now,
        **fields,
    )
    db[WEBHOOKS_COLLECTION].insert_one(endpoint.model_dump(by_alias=True))
    return endpoint


def insert_event(db: Database[Doc], event: JobEvent) -> None:
    query, update = outbox_insert(event)
    db[EVENTS_COLLECTION].update_one(query, update, upsert=True)


def job_life(job_id: str, owner: str = "alice") -> list[JobEvent]:
    """A job's events as the operator writes them: submitted, running, two progress reports,
    succeeded, one second apart."""
    t0 = datetime.now(UTC)
    meta = {"customer": "c-42"}

    def at(i: int) -> datetime:
        return t0 + timedelta(seconds=i)

    common: Doc = {"job_id": job_id, "owner": owner, "metadata": meta}
    return [
        job_event(EventType.SUBMITTED, at=at(0), **common),
        job_event(EventType.RUNNING, at=at(1), attempt=1, **common),
        job_event(EventType.PROGRESS, at=at(2), attempt=1, progress=50, **common),
        job_event(EventType.SUCCEEDED, at=at(3), data={"outputs": [{"name": "720p"}]}, **common),
    ]
