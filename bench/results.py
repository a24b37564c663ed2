"""What every bench shares: fair rounds, and one results file per bench under bench/results/.

Docs quote a figure only from a results file (naming the file and the command), so each file
says where and when it was measured (machine, load average before and after, git commit), what
the figures are held to (goals), how they were taken (rounds, warm-up, statistic) and the raw
per-round numbers behind every median, so a reader can judge the spread.

The machine is usually shared (2 cores, other work running): a single round says little. Rounds
alternate between our path and its baseline, the order flips every round (A B, B A, ...) so
neither side always runs right after the other's leftovers (page cache, disk writeback), both
sides get the same warm-up, and figures are medians of both sides.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
SCHEMA_VERSION = 1
ALTERNATING = "alternating, reversed every other round"
T = TypeVar("T")
Op = Literal["<=", ">=", "<", ">"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


@dataclass(frozen=True)
class Goal:
    """`figures[figure] <op> target`, e.g. Goal("ratio", "<=", 1.5)."""

    figure: str
    op: Op
    target: float

    def met(self, value: float) -> bool:
        return _COMPARE[self.op](value, self.target)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q <= 1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def alternate(
    actions: Mapping[str, Callable[[], T]], rounds: int, warmup: int = 1
) -> dict[str, list[T]]:
    """Every action's result in each of `rounds` rounds, after `warmup` unrecorded rounds.

    Within a round every action runs once; the order is reversed every other round.
    """
    names = list(actions)
    for _ in range(warmup):
        for name in names:
            actions[name]()
    out: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            out[name].append(actions[name]())
    return out


def py_spy_argv(out: Path, rate: int = 200) -> list[str]:
    """`py-spy record` writing collapsed stacks to `out`; add `--pid N` or `-- argv`.

    For a bench's --profile option: sampling costs CPU, so a profiled run records no figures.
    """
    spy = REPO / ".venv" / "bin" / "py-spy"
    return [str(spy), "record", "-o", str(out), "--format", "raw", "--rate", str(rate)]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used so far (Linux /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "ram_mib": mem_kib // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    # Uncommitted changes outside bench/results/ mean the figures are not of `commit` alone.
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(dirty)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Recorder:
    """Made when a bench starts (load before, start time); `write` adds the rest."""

    bench: str
    arguments: dict[str, Any]
    argv: list[str] = field(default_factory=lambda: list(sys.argv[1:]))
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_before: list[float] = field(default_factory=load_average)
    # The tree measured: taken when the bench starts, not when it writes (a long bench outlives
    # commits made meanwhile).
    git: dict[str, Any] = field(default_factory=git_state)

    def write(
        self,
        *,
        goals: list[Goal],
        figures: dict[str, float],
        method: dict[str, Any],
        rounds: Mapping[str, list[float]],
        notes: dict[str, Any] | None = None,
        directory: Path = RESULTS_DIR,
    ) -> Path:
        """Write bench/results/<bench>.json and return its path.

        Every goal's figure must be among `figures` (a goal with nothing measured is a bug).
        """
        missing = [g.figure for g in goals if g.figure not in figures]
        if missing:
            raise KeyError(f"goals without a measured figure: {missing}")
        doc = {
            "schema": SCHEMA_VERSION,
            "bench": self.bench,
            "command": shlex.join([".venv/bin/python", f"bench/{self.bench}.py", *self.argv]),
            "arguments": self.arguments,
            "date": self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git": self.git,
            "machine": machine(),
            "load_average": {"before": self.load_before, "after": load_average()},
            "goals": [
                {
                    "figure": g.figure,
                    "op": g.op,
                    "target": g.target,
                    "measured": figures[g.figure],
                    "met": g.met(figures[g.figure]),
                }
                for g in goals
            ],
            "figures": {k: round(v, 4) for k, v in figures.items()},
            "method": {"order": ALTERNATING, **method},
            "rounds": {k: [round(v, 4) for v in vs] for k, vs in rounds.items()},
            "notes": notes or {},
        }
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.bench}.json"
        # Paths and other plain values among the arguments are written as their text.
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        return path

    @staticmethod
    def summary(path: Path) -> str:
        """The goals as one line each, for the bench's last lines of output."""
        doc = json.loads(path.read_text())
        lines = [
            f"{g['figure']} = {g['measured']:.3g} (goal {g['op']} {g['target']:g}): "
            + ("met" if g["met"] else "NOT met")
            for g in doc["goals"]
        ]
        load = doc["load_average"]
        lines.append(f"load average before {load['before']}, after {load['after']}")
        lines.append(f"written to {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        return "\n".join(lines)
