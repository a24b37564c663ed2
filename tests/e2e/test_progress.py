"""Progress end to end: a real transcode, long enough to report several times, watched while it runs
in all three places a user or operator can read it.

The processor (real image, real ffmpeg) patches status.progress on its VideoJob; the operator copies
it into the MongoDB job document; the API serves that document. Before this test only the final
100 written on success was ever seen end to end, so any of those hops could have been dropped.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import yaml

from tests.utils.cluster import LocalCluster
from tests.utils.platform import CHART, Platform, installed

pytestmark = pytest.mark.e2e

log = logging.getLogger(__name__)

RELEASE = "vidpipe-progress"
SOURCES = ("videojob", "mongodb", "api")
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
POLL_SECONDS = 0.5


@pytest.fixture(scope="module")
def platform(cluster: LocalCluster) -> Iterator[Platform]:
    with installed(cluster, RELEASE) as platform:
        yield platform


def make_video(path: Path, seconds: int) -> Path:
    # 1280x720 testsrc2 transcoded to 720p and 480p keeps the real processor busy for ~20-40 s
    # on 2 cores: several 2 s reporting intervals (processor reporter.DEFAULT_MIN_INTERVAL_SECONDS).
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", str(path)],
        check=True,
    )  # fmt: skip
    return path


def mongo_database() -> str:
    """The database the chart points the API and operator at (values.yaml `mongo.database`)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return str(values["mongo"]["database"])


def is_non_decreasing(values: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("progress") / "long.mp4", seconds=75)


def watch(platform: Platform, source: Path, params: dict[str, str]) -> dict[str, list[int]]:
    """Upload `source`, then poll all three sources until the job ends; the progress each showed
    while it said Running, after asserting each sequence rose and ended Succeeded at 100."""
    with platform.client() as http:
        with source.open("rb") as body:
            response = http.put(
                "/v1/videos",
                content=body,
                params={"renditions": "720p,480p", **params},
                headers={"Content-Type": "video/mp4", "X-Filename": "progress.mp4"},
            )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        # (phase, progress) per poll, per source, from upload to the end of the job.
        samples: dict[str, list[tuple[str, int]]] = {name: [] for name in SOURCES}
        mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            platform.cluster.mongo_url, serverSelectionTimeoutMS=5000
        )
        try:
            jobs = mongo[mongo_database()].jobs
            deadline = time.monotonic() + 600
            while True:
                status = platform.get("vj", job_id).get("status", {})
                doc = jobs.find_one({"_id": job_id}, {"phase": 1, "progress": 1}) or {}
                served = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
                now = {
                    "videojob": (status.get("phase", ""), int(status.get("progress") or 0)),
                    "mongodb": (doc.get("phase", ""), int(doc.get("progress") or 0)),
                    "api": (served["phase"], int(served["progress"])),
                }
                for name, sample in now.items():
                    samples[name].append(sample)
                if all(phase in TERMINAL for phase, _ in now.values()):
                    break
                assert time.monotonic() < deadline, f"{job_id} not finished after 600 s: {now}"
                time.sleep(POLL_SECONDS)
        finally:
            mongo.close()

    running: dict[str, list[int]] = {}
    for name in SOURCES:
        # Fails if any source goes backwards (a late or out-of-order write) or does not end
        # Succeeded at 100.
        assert is_non_decreasing([p for _, p in samples[name]]), (name, samples[name])
        assert samples[name][-1] == ("Succeeded", 100), (name, samples[name][-1])
        running[name] = [p for phase, p in samples[name] if phase == "Running"]
        intermediate = sorted({p for p in running[name] if 0 < p < 100})
        log.info(
            "%s %s: while Running %s, distinct in (0, 100) %s",
            params,
            name,
            running[name],
            intermediate,
        )
    return running


def intermediate(values: list[int]) -> set[int]:
    return {p for p in values if 0 < p < 100}


@pytest.mark.parametrize(
    "options",
    [
        # The default outputs, storyboard included: its tile filter once held back every
        # -progress block until its grid was full (0, 1, ... 1, 89, 100 over a 20 s encode).
        pytest.param({}, id="default-outputs"),
        pytest.param({"storyboard": "false"}, id="no-storyboard"),
    ],
)
def test_progress_rises_in_videojob_mongodb_and_api(
    platform: Platform, source: Path, options: dict[str, str]
) -> None:
    running = watch(platform, source, options)
    # Fails if a hop drops or batches the reports (the processor's patch of the VideoJob, the
    # operator's copy into MongoDB, the API reading the document) or if ffmpeg reports nothing
    # until the end: a source would show fewer than three values between 0 and 100 while Running.
    for name in SOURCES:
        assert len(intermediate(running[name])) >= 3, (name, running[name])
