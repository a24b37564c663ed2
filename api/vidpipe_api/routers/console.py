"""The web console at `/ui`: static files shipped in this package (no build step, no server of
its own), served with a strict Content-Security-Policy.

The files are read once, at start-up, from `vidpipe_api/console/` (and `console/vendor/`, which
hack/ui.sh fills with the pinned hls.js at build time); nothing else on disk is reachable. The
page holds the API key in sessionStorage and sends it as a header; it has no cookie, so the
API stays free of CSRF concerns.

The policy allows scripts and styles from this origin only (no inline code, no eval), media and
fetches from this origin and the S3 endpoint that presigned links point at (uploads of parts,
posters, downloads), `blob:` media for the player's MediaSource, and nothing may frame the page.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from vidpipe_api.deps import SettingsDep
from vidpipe_api.settings import Settings

router = APIRouter(include_in_schema=False)

ROOT = Path(__file__).resolve().parent.parent / "console"
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


def s3_origin(settings: Settings) -> str | None:
    """The scheme://host[:port] presigned links point at; None for AWS (any regional host)."""
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(settings: Settings) -> str:
    origin = s3_origin(settings)
    # Without an endpoint, links are AWS's virtual-hosted URLs for the bucket.
    s3 = origin or f"https://{settings.s3_bucket}.s3.{settings.s3_region}.amazonaws.com"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: {s3}",
            f"media-src 'self' blob: {s3}",
            f"connect-src 'self' {s3}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@lru_cache(maxsize=1)
def files() -> dict[str, tuple[bytes, str]]:
    """Every servable file by its path under /ui/, with its content type (read once)."""
    found: dict[str, tuple[bytes, str]] = {}
    for path in sorted(ROOT.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        kind = TYPES.get(path.suffix)
        if kind is None:
            continue  # licences and notes stay on disk, not on the web
        found[path.relative_to(ROOT).as_posix()] = (path.read_bytes(), kind)
    return found


def headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        # Small files, revalidated each load so a new image is seen at once.
        "Cache-Control": "no-cache",
    }


@router.get("/ui")
async def console_root() -> Response:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/{name:path}")
async def console_file(name: str, settings: SettingsDep) -> Response:
    """A file of the console; `/ui/` is its page."""
    entry = files().get(name or "index.html")
    if entry is None:
        raise HTTPException(404, f"no console file {name!r}")
    body, kind = entry
    return Response(body, media_type=kind, headers=headers(settings))
