"""Does FerretDB answer one ordered `update` of N statements on existing documents?

    .venv/bin/python bench/ferretdb_batch.py --backend sqlite --n 99 100
    .venv/bin/python bench/ferretdb_batch.py --backend postgresql --pool 0 --n 49 50
    .venv/bin/python bench/ferretdb_batch.py --backend postgresql --n 100 250  # the scale bench's

The operator mirrors VideoJobs to MongoDB in batches of up to `mongo_batch_max` statements per
`update` command (batching.py). FerretDB v1.24 keeps one backend connection per matched statement
until the whole command ends (handler/msg_update.go defers each statement's iterator Close inside
its loop) and takes one more for each write, so a command with as many matched statements as its
connection pool (SQLite: 100, fixed; PostgreSQL through pgx: 50 unless the URL says
pool_max_conns) waits for a connection that never comes: FerretDB stops answering everyone, with
idle CPU, until restarted. This is the stall the scale bench met (docs/operator.md). Each N runs on
a fresh server; a size that does not answer within --timeout is reported as stalled. Prints only:
a probe of a third-party limit, not a figure of ours (no results file).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from pymongo import MongoClient  # noqa: E402
from pymongo.errors import NetworkTimeout  # noqa: E402
from tests.utils.servers import mongo_server  # noqa: E402

from bench.postgres import FERRETDB_POOL, ferretdb_on_postgres  # noqa: E402


def answers(url: str, n: int, timeout: float) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(url, socketTimeoutMS=int(timeout * 1000))
    try:
        db = client["probe"]
        db.jobs.insert_many([{"_id": f"j{i}", "phase": "Running"} for i in range(n)])
        updates = [
            {"q": {"_id": f"j{i}"}, "u": {"$set": {"phase": "Succeeded"}}, "upsert": True}
            for i in range(n)
        ]
        try:
            db.command({"update": "jobs", "updates": updates, "ordered": True})
        except NetworkTimeout:
            return False
        return True
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--n", type=int, nargs="+", default=[99, 100])
    parser.add_argument(
        "--pool",
        type=int,
        default=FERRETDB_POOL,
        help="postgresql: FerretDB's pool_max_conns (0: FerretDB's default)",
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before 'stalled'")
    args = parser.parse_args()
    server: Callable[[Path], AbstractContextManager[str]] = (
        mongo_server
        if args.backend == "sqlite"
        else functools.partial(ferretdb_on_postgres, pool=args.pool or None)
    )
    for n in args.n:
        with server(Path(tempfile.mkdtemp(prefix="vidpipe-ferret-"))) as url:
            start = time.monotonic()
            ok = answers(url, n, args.timeout)
            took = time.monotonic() - start
        verdict = "answered" if ok else "STALLED"
        print(f"{args.backend}: update of {n} statements: {verdict} ({took:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
