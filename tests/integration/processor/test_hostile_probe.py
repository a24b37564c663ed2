"""The shared probe (vidpipe.probe) with the real ffprobe on crafted files: refused with a
bad-input code, and ffprobe's peak memory stays under the sandbox's limit (issue 11, finding 2:
a 2.8 KB MP4 once made ffprobe allocate ~1 GB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.hostile_media import claim_samples, tiny_mp4
from vidpipe.errors import BAD_INPUT_CODES
from vidpipe.probe import ProbeLimits

pytestmark = pytest.mark.integration

# Runs in a child interpreter so RUSAGE_CHILDREN holds ffprobe's peak alone.
PROBE_AND_MEASURE = """
import json, resource, sys
from vidpipe.errors import VidpipeError
from vidpipe.probe import ProbeLimits, probe
try:
    probe(sys.argv[1], ProbeLimits())
    code = "accepted"
except VidpipeError as exc:
    code = exc.code.value
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"code": code, "peak": peak}))
"""


@pytest.mark.parametrize("samples", [5_000_000, 20_000_000])
def test_claimed_sample_tables_are_refused_within_the_memory_limit(
    tmp_path: Path, samples: int
) -> None:
    crafted = claim_samples(tiny_mp4(tmp_path / "tiny.mp4"), tmp_path / "crafted.mp4", samples)
    assert crafted.stat().st_size < 8 * 1024
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", PROBE_AND_MEASURE, str(crafted)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(root / "common"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    result = json.loads(done.stdout)
    assert result["code"] in {c.value for c in BAD_INPUT_CODES}, result
    # Fails without the sandbox: the 20 M file alone peaks at ~985 MB resident.
    assert result["peak"] < ProbeLimits().memory_bytes, result


def test_an_ordinary_file_still_probes_under_the_sandbox(tmp_path: Path) -> None:
    from vidpipe.probe import probe

    info = probe(str(tiny_mp4(tmp_path / "ok.mp4", size="320x240")), ProbeLimits())
    assert (info.width, info.height, info.video_codec) == (320, 240, "h264")
