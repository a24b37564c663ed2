"""The console's two upload paths in Debian's chromium (Playwright), against the real API, S3
(versitygw) and FerretDB: presigned parts straight to S3 when the bucket's CORS rules let the
page in, and the API's form upload when they do not.

The page's threshold for parts (64 MiB) is lowered to 1 MiB for these tests by rewriting that
one constant as the browser loads console.js, so a 12 MB file goes in three 5 MiB parts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.integration.api.conftest import Api, ApiFactory, Media
from tests.utils.servers import S3Server

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
THRESHOLD = "const FORM_UPLOAD_MAX = 64 * 1024 * 1024;"
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = shutil.which("chromium")
    assert path, "Debian's chromium is missing: run hack/deps.sh"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def big_api(offline_api_factory: ApiFactory) -> Iterator[Api]:
    # Room for the 12 MB, 4 s file; S3's smallest parts, so it takes three.
    with offline_api_factory(
        max_upload_bytes=64 * MiB, max_duration_seconds=10, part_size_bytes=5 * MiB
    ) as api:
        yield api


def small_threshold(route: Route) -> None:
    response = route.fetch()
    body = response.text()
    assert THRESHOLD in body, "the console's threshold moved: update this test"
    smaller = body.replace(THRESHOLD, f"const FORM_UPLOAD_MAX = {MiB};")
    route.fulfill(response=response, body=smaller)


def upload(browser: Browser, api: Api, path: Path) -> tuple[str, list[str]]:
    """Sign in, upload `path` through the page; the job id and the requests the page made."""
    page: Page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    page.route("**/ui/console.js", small_threshold)
    try:
        page.goto(f"{api.url}/ui/")
        page.fill("#key", api.keys["alice"])
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#upload:not([hidden])")
        page.set_input_files("#file", str(path))
        page.click("#upload-start")
        page.wait_for_function(
            "() => document.getElementById('upload-note').textContent.startsWith('Uploaded')",
            timeout=WAIT_MS,
        )
        assert page.eval_on_selector("#upload-progress", "p => p.value") == 100
        note = page.text_content("#upload-note") or ""
        return note.removeprefix("Uploaded: job ").strip(), requests
    finally:
        page.close()


def no_cors(client: Any, bucket: str) -> None:
    """The bucket without CORS rules (the module's bucket may have none to delete)."""
    try:
        client.delete_bucket_cors(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
            raise


def record(api: Api, job_id: str) -> dict[str, Any]:
    with api.mongo() as mc:
        doc = mc[api.settings.mongo_database]["jobs"].find_one({"_id": job_id})
    assert doc is not None, job_id
    return doc


def test_large_file_goes_to_s3_in_parts_when_cors_allows_and_through_the_api_when_not(
    big_api: Api, s3: S3Server, browser: Browser, large_media: Path
) -> None:
    # Fails if the page does not send a large file in presigned parts when S3 lets it, does not
    # complete the session (no job), or, when S3's CORS rules shut the page out, fails the upload
    # instead of sending it through the API (and leaves the abandoned session open).
    bucket = big_api.settings.s3_bucket
    client = s3.client()
    no_cors(client, bucket)

    job_id, requests = upload(browser, big_api, large_media)
    assert job_id.startswith("vj-"), job_id
    assert record(big_api, job_id)["uploaded_via"] == "form"
    assert any(r.startswith("DELETE ") and "/v1/uploads/" in r for r in requests), requests
    with big_api.mongo() as mc:
        sessions = mc[big_api.settings.mongo_database]["upload_sessions"]
        assert sessions.count_documents({"owner": "alice"}) == 0, "the refused session stayed"

    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [big_api.url],
                    "AllowedMethods": ["PUT"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                }
            ]
        },
    )
    try:
        job_id, requests = upload(browser, big_api, large_media)
    finally:
        no_cors(client, bucket)
    assert record(big_api, job_id)["uploaded_via"] == "presigned"
    s3_puts = [r for r in requests if r.startswith("PUT ") and "partNumber=" in r]
    assert len(s3_puts) == 3, s3_puts  # 12 MB in 5 MiB parts
    assert not any(r.startswith("POST ") and r.endswith("/v1/videos") for r in requests)


def signed_in(browser: Browser, api: Api) -> Page:
    page = browser.new_page()
    page.route("**/ui/console.js", small_threshold)
    page.goto(f"{api.url}/ui/")
    page.fill("#key", api.keys["bob"])
    page.press("#key", "Enter")
    page.wait_for_selector("#upload:not([hidden])")
    return page


def job_count(api: Api, owner: str) -> int:
    with api.mongo() as mc:
        return int(mc[api.settings.mongo_database]["jobs"].count_documents({"owner": owner}))


def test_a_dropped_file_is_uploaded_and_a_cancelled_upload_leaves_nothing(
    big_api: Api, s3: S3Server, browser: Browser, media: Media, large_media: Path
) -> None:
    # Fails if dropping a file on the drop zone does not upload it, if Cancel does not stop an
    # upload in progress, or if a cancelled presigned upload leaves its session (and parts) or
    # creates a job.
    page = signed_in(browser, big_api)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    try:
        data = list(media.ok.read_bytes())
        page.evaluate(
            """(bytes) => {
                const file = new File([new Uint8Array(bytes)], 'dropped.mp4', {type: 'video/mp4'});
                const dt = new DataTransfer();
                dt.items.add(file);
                const zone = document.getElementById('drop');
                for (const type of ['dragover', 'drop']) {
                    zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true}));
                }
            }""",
            data,
        )
        page.wait_for_function(
            "() => document.getElementById('upload-note').textContent.startsWith('Uploaded')",
            timeout=WAIT_MS,
        )
        assert "dropped.mp4" in (page.text_content("#job-list") or "")
        before = job_count(big_api, "bob")

        # Slow the page's uploads so Cancel lands while parts are in flight.
        cdp = page.context.new_cdp_session(page)
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": 256 * 1024,
            },
        )
        client = s3.client()
        client.put_bucket_cors(
            Bucket=big_api.settings.s3_bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [big_api.url],
                        "AllowedMethods": ["PUT"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                    }
                ]
            },
        )
        try:
            page.set_input_files("#file", str(large_media))
            page.click("#upload-start")
            page.wait_for_function(
                "() => document.getElementById('upload-progress').value > 0", timeout=WAIT_MS
            )
            page.click("#upload-cancel")
            page.wait_for_function(
                "() => document.getElementById('upload-note').textContent === 'Upload cancelled.'",
                timeout=WAIT_MS,
            )
        finally:
            no_cors(client, big_api.settings.s3_bucket)
        # A session existed (parts were on their way) and the cancel discarded it.
        assert any(r.startswith("POST ") and r.endswith("/v1/uploads") for r in requests)
        assert any(r.startswith("DELETE ") and "/v1/uploads/" in r for r in requests)
        with big_api.mongo() as mc:
            sessions = mc[big_api.settings.mongo_database]["upload_sessions"]
            assert sessions.count_documents({"owner": "bob"}) == 0
        assert job_count(big_api, "bob") == before
    finally:
        page.close()
