"""Headless Chromium for the report tests: Debian's ``chromium`` driven by Playwright (no browser download).

:func:`chromium` starts one browser with a fresh profile and yields a Playwright ``BrowserContext`` whose
pages are 1280×800. When ``/usr/bin/chromium`` (or ``EDGEFINDER_CHROMIUM``) is missing the test fails
under ``CI`` (``.ci/run`` installs it) and is skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

VIEWPORT = {"width": 1280, "height": 800}
#: Flags that work in this sandbox: no GPU, no network side channels, a fresh profile each time.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium executable, or fail (CI) / skip (elsewhere) with what to install."""
    exe = os.environ.get("EDGEFINDER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).is_file():
        msg = f"no Chromium at {exe}: apt-get install chromium (or set EDGEFINDER_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set: the browser test must not skip)")
        pytest.skip(msg)
    return exe


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser context on Debian's Chromium (see the module doc)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    profile = tempfile.mkdtemp(prefix="ef-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=exe, args=FLAGS, headless=True, viewport=VIEWPORT
            )
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
