"""Allocation sites of a Python process, for bench/operator_scale.py --tracemalloc.

Python imports `sitecustomize` at start-up from its path, so putting this directory on the
operator's PYTHONPATH traces it without touching its code. With $VIDPIPE_BENCH_TRACEMALLOC set,
allocations are traced (8 frames each) and, every 20 s while traced memory is at its highest so
far, the largest sites are written to that file (by line, then by traceback). Tracing slows the
process down and takes memory of its own: a traced run is for finding what holds memory, not for
figures.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path

TOP = 25


def _report(snapshot: tracemalloc.Snapshot, current: int) -> str:
    lines = [f"traced {current / 2**20:.0f} MiB at {time.strftime('%H:%M:%S')}", "", "by line:"]
    for stat in snapshot.statistics("lineno")[:TOP]:
        lines.append(f"  {stat.size / 2**20:8.1f} MiB {stat.count:9d} blocks  {stat.traceback[0]}")
    lines += ["", "by traceback:"]
    for stat in snapshot.statistics("traceback")[:TOP]:
        lines.append(f"{stat.size / 2**20:.1f} MiB in {stat.count} blocks")
        lines += stat.traceback.format(most_recent_first=True)
    return "\n".join(lines) + "\n"


def _dump(path: str) -> None:
    peak = 0
    while True:
        time.sleep(20)
        current, _ = tracemalloc.get_traced_memory()
        if current < peak:
            continue
        peak = current
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        tmp = Path(path + ".tmp")
        tmp.write_text(_report(snapshot, current))
        tmp.replace(path)


_PATH = os.environ.get("VIDPIPE_BENCH_TRACEMALLOC")
if _PATH:
    tracemalloc.start(8)
    threading.Thread(target=_dump, args=(_PATH,), daemon=True, name="tracemalloc-dump").start()
