"""Hostile media made on the fly for the tests that attack the probe and the processor.

`claim_samples` rewrites an ordinary MP4's video sample tables so that a tiny file claims millions
of samples: libavformat then builds an index entry per claimed sample (about 1 GB for 20 M), which
is the memory attack the probe sandbox must stop.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def tiny_mp4(path: Path, *, seconds: float = 1, size: str = "64x48") -> Path:
    """A real, small H.264 MP4 with the moov box after mdat (ffmpeg's default layout)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-y", str(path)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


def _boxes(data: bytes, start: int, end: int) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of the boxes directly inside data[start:end]."""
    found = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size < 8 or pos + size > end:
            raise ValueError(f"unexpected box {kind!r} at {pos}")
        found.append((pos, size, kind))
        pos += size
    return found


def _find(data: bytes, path: list[bytes]) -> list[tuple[int, int]]:
    """Offsets and sizes of every box along `path` (the last one is the target)."""
    chain: list[tuple[int, int]] = []
    start, end = 0, len(data)
    for kind in path:
        match = [(o, s) for o, s, k in _boxes(data, start, end) if k == kind]
        if not match:
            raise ValueError(f"no {kind!r} box")
        offset, size = match[0]
        chain.append((offset, size))
        start, end = offset + 8, offset + size
    return chain


def claim_samples(source: Path, out: Path, samples: int) -> Path:
    """Copy `source`, its first track's stsz and stsc claiming `samples` samples in one chunk."""
    data = bytearray(source.read_bytes())
    stbl = [b"moov", b"trak", b"mdia", b"minf", b"stbl"]
    # stsc: one entry, every sample in the first chunk (the table shrinks, ancestors shrink).
    stsc_new = struct.pack(">I4sIIIII", 28, b"stsc", 0, 1, 1, samples, 1)
    # stsz: one constant sample size, no per-sample table.
    stsz_new = struct.pack(">I4sIII", 20, b"stsz", 0, 1, samples)
    for kind, new in ((b"stsc", stsc_new), (b"stsz", stsz_new)):
        chain = _find(bytes(data), [*stbl, kind])
        offset, size = chain[-1]
        delta = len(new) - size
        data[offset : offset + size] = new
        for parent_offset, parent_size in chain[:-1]:
            struct.pack_into(">I", data, parent_offset, parent_size + delta)
    moov_offset, _ = _find(bytes(data), [b"moov"])[0]
    mdat_offset, _ = _find(bytes(data), [b"mdat"])[0]
    if moov_offset < mdat_offset:
        raise ValueError("moov before mdat: chunk offsets would need rewriting")
    out.write_bytes(bytes(data))
    return out
