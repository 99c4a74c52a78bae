"""Headless Chromium (Debian's package) for what a person looks at: pages and reports.

A missing browser is a failure naming the package, never a skip.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError(
            "chromium not found: install the Debian package 'chromium' (make system-deps)"
        )
    return found


def _run(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            timeout=90,
            check=False,
        )


def dump_dom(url: str) -> str:
    res = _run(url, "--dump-dom", "--virtual-time-budget=2000")
    return res.stdout.decode("utf-8", "replace")


def screenshot(url: str, out: Path, size: str = "1280,1000") -> Path:
    _run(url, f"--screenshot={out}", f"--window-size={size}", "--hide-scrollbars")
    if not out.exists():
        raise AssertionError(f"chromium wrote no screenshot of {url}")
    return out


def distinct_colours(png: Path, limit: int = 64) -> int:
    """Distinct pixel values in a PNG (8-bit RGB/RGBA, no interlace): 1 means a blank page."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            ctype = body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = {2: 3, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = width * channels
    seen: set[bytes] = set()
    prev = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):  # undo the PNG row filter
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        if row % 8 == 0:
            for x in range(0, stride, channels * 8):
                seen.add(bytes(line[x : x + 3]))
                if len(seen) >= limit:
                    return len(seen)
        prev = line
    return len(seen)
