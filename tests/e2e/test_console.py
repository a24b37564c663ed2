"""The web console in a real browser against the chart in the local cluster (issue 15).

Debian's chromium (hack/deps.sh), driven headless by Playwright for Python with
`executable_path`, so no browser is ever downloaded. The page is used as a person would: the
key typed and submitted with the keyboard, a generated 20 s clip uploaded through the form, the
job watched in the list while the real processor transcodes it (the page is never reloaded:
only the event stream can move it), then played with hls.js from the signed playback URL, and
played again with a lower `max_resolution` to force a rendition switch.

Screenshots of the upload, list and player views are written to docs/screenshots/ (linked from
the README), at 360 px wide: the width the console is made for.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.utils.cluster import REPO, LocalCluster
from tests.utils.platform import Platform, installed

pytestmark = pytest.mark.e2e

RELEASE = "vidpipe-console"
SCREENSHOTS = REPO / "docs" / "screenshots"
WIDTH = 360
# Renditions of the upload: two, so a lower max_resolution leaves a smaller one to switch to.
RENDITIONS = "360p,240p"
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
WAIT_MS = 600_000  # the processor shares two cores with other test runs


def chromium_path() -> str:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is missing: run hack/deps.sh"
    return path


@pytest.fixture(scope="module")
def platform(cluster: LocalCluster) -> Iterator[Platform]:
    with installed(cluster, RELEASE) as platform:
        yield platform


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of 640x360 test pattern with a tone: H.264 + AAC, as a phone might send."""
    path = tmp_path_factory.mktemp("console") / "console-clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "20", "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", str(path)],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=chromium_path(),
            # Root in a container has no user namespace for chromium's sandbox; the pages
            # opened are our own. Autoplay without a click, as a user's click would allow.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            launched.close()


def fits(page: Page) -> bool:
    """Nothing wider than the viewport (no sideways scrolling at 360 px)."""
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width <= WIDTH


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


def row(page: Page, job_id: str) -> dict[str, Any]:
    """The job's line in the list as the page shows it now."""
    found: dict[str, Any] = page.evaluate(
        """(id) => {
            const li = document.querySelector(`[data-job="${id}"]`);
            if (!li) return {};
            return {phase: li.querySelector('.phase').textContent.split(' ')[0],
                    progress: li.querySelector('progress').value};
        }""",
        job_id,
    )
    return found


def video_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => {
            const v = document.getElementById('player');
            return {time: v.currentTime, height: v.videoHeight, src: v.currentSrc,
                    source: v.dataset.source || '', paused: v.paused,
                    note: document.getElementById('player-note').textContent};
        }"""
    )
    return state


# Predicates are functions, not expressions: Playwright evaluates a string expression with
# eval, which the console's policy (no 'unsafe-eval') refuses, as it should.
def wait_playing_past(page: Page, seconds: float) -> dict[str, Any]:
    page.evaluate("document.getElementById('player').muted = true")
    page.evaluate("document.getElementById('player').play().catch(() => {})")
    page.wait_for_function(
        f"() => document.getElementById('player').currentTime > {seconds}", timeout=WAIT_MS
    )
    return video_state(page)


def is_non_decreasing(values: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


def test_console_upload_watch_and_play(platform: Platform, browser: Browser, clip: Path) -> None:
    # Fails if: the key cannot be entered and submitted by keyboard; the page upload does not
    # create a job; the list does not move to Succeeded by itself (the stream) or its progress
    # goes backwards or shows nothing between 0 and 100; the page reloads; the layout needs
    # sideways scrolling at 360 px; the player does not play the HLS source (MSE from the
    # signed /play master) past 2 s; or a lower max_resolution does not switch the rendition.
    context = browser.new_context(viewport={"width": WIDTH, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        page.goto(f"{platform.base_url}/ui/")
        page.focus("#key")
        page.keyboard.type(platform.key)
        page.keyboard.press("Enter")
        page.wait_for_selector("#upload:not([hidden])", timeout=60_000)
        page.wait_for_selector("#live.on", timeout=60_000)  # the stream is open
        # Set once: a reload would lose it, so it proves no reload happened.
        page.evaluate("window.__sameDocument = true")

        page.set_input_files("#file", str(clip))
        page.fill("#renditions", RENDITIONS)
        page.click("#upload-start")
        page.wait_for_function(
            "() => document.getElementById('upload-note').textContent.startsWith('Uploaded')",
            timeout=WAIT_MS,
        )
        assert page.eval_on_selector("#upload-progress", "p => p.value") == 100
        note = page.text_content("#upload-note") or ""
        job_id = note.removeprefix("Uploaded: job ").strip()
        assert job_id.startswith("vj-"), note
        assert fits(page)
        shot(page, "upload")

        samples: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            sample = row(page, job_id)
            if sample:
                samples.append(sample)
            if sample.get("phase") in TERMINAL:
                break
            assert time.monotonic() < deadline, f"no end after {WAIT_MS} ms: {samples[-3:]}"
            time.sleep(0.25)
        assert samples[-1]["phase"] == "Succeeded", (samples[-1], platform.base_url)
        progress = [int(s["progress"]) for s in samples]
        assert is_non_decreasing(progress), progress
        assert any(0 < p < 100 for p in progress), sorted(set(progress))
        assert progress[-1] == 100
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"

        page.click("#detail-close")
        page.wait_for_selector("#detail", state="hidden")
        assert fits(page)
        shot(page, "list")

        page.click(f'[data-job="{job_id}"] button')
        page.wait_for_selector("#media:not([hidden])", timeout=60_000)
        first = wait_playing_past(page, 2.0)
        assert first["source"] == "hls" and first["src"].startswith("blob:"), first
        # hls.js may start low and climb once it has measured the link: wait for the top.
        page.wait_for_function(
            "() => document.getElementById('player').videoHeight === 360", timeout=WAIT_MS
        )
        assert (
            "offered: 360p, 240p" in video_state(page)["note"]
            or "offered: 240p, 360p" in (video_state(page)["note"])
        )
        page.evaluate("document.getElementById('player').pause()")
        assert fits(page)
        shot(page, "player")

        page.select_option("#maxres", "240p")
        page.wait_for_function(
            "() => document.getElementById('player').videoHeight === 240", timeout=WAIT_MS
        )
        lower = wait_playing_past(page, 2.0)
        assert lower["height"] == 240 and lower["src"].startswith("blob:"), lower
        assert lower["note"].endswith("offered: 240p"), lower  # 360p left out by the token
        assert not errors, errors
        assert not violations, violations
    finally:
        context.close()
