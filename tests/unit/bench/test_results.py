"""The benches' shared results writer and round order (bench/results.py).

Docs quote figures only from bench/results/*.json, so the files must hold what
bench/results/README.md says they hold, and the rounds behind each median must be fair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.results import REPO, Goal, Recorder, alternate

pytestmark = pytest.mark.unit

SCHEMA_DOC = REPO / "bench" / "results" / "README.md"


def documented_keys() -> set[str]:
    """The top-level keys in the README's table (first column, in backticks)."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", SCHEMA_DOC.read_text(), flags=re.MULTILINE))


def test_the_written_file_has_exactly_the_documented_keys_and_judges_its_goals(
    tmp_path: Path,
) -> None:
    """Fails if the writer and bench/results/README.md disagree on a key, if a goal is judged
    wrongly, if an argument (a Path) cannot be written, or if the machine, load, commit or raw
    rounds are missing."""
    recorder = Recorder("demo", {"rounds": 3, "profile": Path("/p")}, argv=["--rounds", "3"])
    path = recorder.write(
        goals=[Goal("ratio", "<=", 1.5), Goal("speed", ">=", 100.0)],
        figures={"ratio": 1.6, "speed": 120.123456},
        method={"rounds": 3, "statistic": "median"},
        rounds={"ours_s": [1.0, 2.0, 3.0], "theirs_s": [0.5, 0.6, 0.7]},
        directory=tmp_path,
    )
    assert path == tmp_path / "demo.json"
    doc = json.loads(path.read_text())
    assert set(doc) == documented_keys()
    assert len(documented_keys()) >= 14  # the table was parsed, not an empty match
    assert doc["command"] == ".venv/bin/python bench/demo.py --rounds 3"
    assert doc["arguments"] == {"rounds": 3, "profile": "/p"}  # argparse's Paths as text
    assert [(g["figure"], g["met"]) for g in doc["goals"]] == [("ratio", False), ("speed", True)]
    assert doc["goals"][1]["measured"] == pytest.approx(120.1235)
    assert doc["figures"] == {"ratio": 1.6, "speed": 120.1235}
    assert doc["rounds"] == {"ours_s": [1.0, 2.0, 3.0], "theirs_s": [0.5, 0.6, 0.7]}
    assert doc["method"]["order"].startswith("alternating")
    assert set(doc["machine"]) == {"cpu_model", "cores", "ram_mib", "kernel", "python"}
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["ram_mib"] > 0
    assert len(doc["load_average"]["before"]) == len(doc["load_average"]["after"]) == 3
    assert re.fullmatch(r"[0-9a-f]{40}", doc["git"]["commit"])
    assert isinstance(doc["git"]["dirty"], bool)


def test_a_goal_without_its_figure_is_refused(tmp_path: Path) -> None:
    """Fails if a results file could claim a goal for a figure nobody measured."""
    with pytest.raises(KeyError, match="ratio"):
        Recorder("demo", {}).write(
            goals=[Goal("ratio", "<=", 1.5)],
            figures={"other": 1.0},
            method={},
            rounds={},
            directory=tmp_path,
        )
    assert not (tmp_path / "demo.json").exists()


def test_rounds_alternate_with_the_same_warmup_on_every_side() -> None:
    """Fails if warm-up results are recorded, a side gets more runs than another, or the order
    does not flip every other round (one side would always run after the other's leftovers)."""
    calls: list[str] = []

    def side(name: str) -> Callable[[], int]:
        def run() -> int:
            calls.append(name)
            return len(calls)

        return run

    out = alternate({"a": side("a"), "b": side("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert out == {"a": [3, 6, 7], "b": [4, 5, 8]}
