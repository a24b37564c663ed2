"""FerretDB on PostgreSQL for a bench: a MongoDB-protocol server that holds thousands of jobs.

The test suite's FerretDB runs on SQLite (tests/utils/servers.py), which stopped answering under
the operator scale bench at about 1,000 VideoJobs (docs/operator.md). Here FerretDB's postgresql
handler (in our build: hack/tools.sh builds upstream's command with its default handlers) talks to
a private PostgreSQL made for one run: Debian's `postgresql` package (`hack/tools.sh postgres`),
initdb in a temporary directory, listening on a loopback port, run as a non-root user (PostgreSQL
refuses to run as root), removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from tests.utils.servers import BIN, ServerProcess, free_port

PG_USER = "vidpipe"  # PostgreSQL's superuser in the private cluster (trust auth, loopback only)
PG_DATABASE = "ferretdb"
# The OS account PostgreSQL runs as when the bench runs as root (the Debian package creates it).
OS_USER = "postgres"
# FerretDB v1.24's `update` command keeps one backend connection per matched statement until the
# whole command ends (handler/msg_update.go defers each statement's iterator Close inside its
# loop), and needs one more for the write: an update of N statements on existing documents
# deadlocks FerretDB for good once N reaches its pool (pgx: 50 by default; SQLite: 100, fixed),
# every goroutine waiting in the pool. The operator sends up to `mongo_batch_max` (100) statements
# per command, so the pool is sized above that plus the concurrent reads.
FERRETDB_POOL = 300
PG_MAX_CONNECTIONS = FERRETDB_POOL + 20  # and PostgreSQL admits them (its default is 100)
# FerretDB v1.24 pushes an `_id` filter down as jsonb containment (`_jsonb->'_id' @> $1`), which its
# own unique `_id` index (a btree on that expression) cannot serve: every update by `_id` scans the
# whole collection (47 ms at 9,000 job documents, EXPLAIN ANALYZE), so writes slow down with the
# collection's size, which MongoDB's `_id` index does not do. A GIN index on the same expression
# serves containment; `indexed` collections get one, made behind FerretDB's back (it never sees
# it, so listIndexes does not list it).
ID_CONTAINMENT_INDEX = " ".join(
    [
        "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table}",
        "USING gin ((_jsonb->'_id') jsonb_path_ops)",
    ]
)


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/<v>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise SystemExit("PostgreSQL is not installed: run `hack/tools.sh postgres` first")


def _as_user() -> tuple[list[str], int, int]:
    """argv prefix that drops root to OS_USER (nothing when not root), with its uid and gid."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    try:
        account = pwd.getpwnam(OS_USER)
    except KeyError:
        raise SystemExit(
            f"running as root and there is no {OS_USER!r} account to run PostgreSQL as: "
            "run `hack/tools.sh postgres` (Debian's package creates it)"
        ) from None
    uid, gid = account.pw_uid, account.pw_gid
    # setpriv execs PostgreSQL itself (no parent left in between), so our signals reach it.
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"], uid, gid


def _run(argv: list[str], cwd: Path) -> None:
    """Run a PostgreSQL tool; on failure, raise with what it printed."""
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


class PostgresProcess(ServerProcess):
    def stop(self, *, crash: bool = False) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to leave;
        # SIGINT ("fast") rolls back open sessions and stops.
        if not crash and self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=60)
        super().stop(crash=crash)


def psql(url: str, sql: str) -> str:
    """Run one SQL statement against `url` with the installed psql; its unaligned output."""
    done = subprocess.run(
        [str(pg_bindir() / "psql"), url, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def index_ids(pg_url: str, mongo_url: str, database: str, collection: str) -> None:
    """Create `collection` through FerretDB and give its table the `_id` containment index."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    try:
        if collection not in client[database].list_collection_names():
            client[database].create_collection(collection)
    finally:
        client.close()
    # FerretDB keeps one schema per database and names each collection's table in its metadata.
    schema = '"' + database.replace('"', '""') + '"'
    table = psql(
        pg_url,
        f"SELECT _jsonb->>'table' FROM {schema}._ferretdb_database_metadata "
        f"WHERE _jsonb->>'_id' = '{collection}'",
    )
    if not table:
        raise RuntimeError(f"FerretDB has no table for {database}.{collection}")
    index = f'"{table}_id_containment"'
    psql(pg_url, ID_CONTAINMENT_INDEX.format(index=index, schema=schema, table=f'"{table}"'))


@contextlib.contextmanager
def postgres_server(workdir: Path, host: str = "127.0.0.1") -> Iterator[str]:
    """A private PostgreSQL with an empty database; yields its postgres:// URL."""
    bindir = pg_bindir()
    prefix, uid, gid = _as_user()
    data = Path(tempfile.mkdtemp(prefix="vidpipe-pg-"))  # outside workdir: OS_USER must reach it
    try:
        os.chown(data, uid, gid)
        initdb = [*prefix, str(bindir / "initdb"), "-D", str(data / "db"), "-U", PG_USER]
        _run([*initdb, "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], data)
        port = free_port()
        argv = [*prefix, str(bindir / "postgres"), "-D", str(data / "db"), "-h", host]
        argv += ["-p", str(port), "-k", str(data)]  # socket in the temporary directory
        argv += ["-c", f"max_connections={PG_MAX_CONNECTIONS}"]
        server = PostgresProcess(argv, {}, workdir / "postgres.log", host, port)
        server.start()
        try:
            # The port opens before the server accepts sessions ("starting up"): ask it.
            deadline = time.monotonic() + 60
            ready = [str(bindir / "pg_isready"), "-h", host, "-p", str(port), "-U", PG_USER]
            while subprocess.run(ready, capture_output=True, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"PostgreSQL not ready; see {workdir / 'postgres.log'}")
                time.sleep(0.2)
            createdb = [str(bindir / "createdb"), "-h", host, "-p", str(port), "-U", PG_USER]
            _run([*createdb, PG_DATABASE], data)
            yield f"postgres://{PG_USER}@{host}:{port}/{PG_DATABASE}"
        finally:
            server.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def ferretdb_on_postgres(
    workdir: Path,
    host: str = "127.0.0.1",
    pool: int | None = FERRETDB_POOL,
    indexed: tuple[tuple[str, str], ...] = (),
) -> Iterator[str]:
    """FerretDB (postgresql handler) on a private PostgreSQL; yields the mongodb:// URL.

    `pool`: FerretDB's connections to PostgreSQL (None: FerretDB's default, 50). `indexed`:
    (database, collection) pairs whose updates by `_id` use an index (ID_CONTAINMENT_INDEX).
    """
    ferretdb = BIN / "ferretdb"
    if not ferretdb.exists():
        raise SystemExit(f"{ferretdb} is missing: run `make tools` first")
    with postgres_server(workdir, host) as pg_url:
        if pool is not None:
            pg_url += f"?pool_max_conns={pool}"
        port = free_port()
        argv = [str(ferretdb), "--handler", "postgresql", "--postgresql-url", pg_url]
        argv += ["--listen-addr", f"{host}:{port}", "--state-dir", "-", "--debug-addr", "-"]
        argv += ["--telemetry", "disable", "--log-level", "warn"]
        server = ServerProcess(argv, {}, workdir / "ferretdb.log", host, port)
        server.start()
        try:
            url = f"mongodb://{host}:{port}/"
            for database, collection in indexed:
                index_ids(pg_url.split("?")[0], url, database, collection)
            yield url
        finally:
            server.stop()
