"""One ``edgefinder demo --report`` run per test session, shared by the demo and report tests.

The demo runs as a user would pipe it: a subprocess whose stdout is a pipe (not a terminal), with no
``COLUMNS`` and no ``EDGEFINDER_*`` variable, on a fresh data directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DemoRun:
    """What the demo printed and where it wrote: the report, the esports database, the checkpoints."""

    stdout: str
    stderr: str
    data_dir: Path
    report: Path
    database: Path
    checkpoints: Path
    seconds: float


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    tmp = tmp_path_factory.mktemp("demo")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("EDGEFINDER_") and k != "COLUMNS"
    }
    env["EDGEFINDER_DATA_DIR"] = str(tmp / "data")  # servers must not be needed: no URLs at all
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "edgefinder", "demo", "--report"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    demo = tmp / "data" / "demo"
    return DemoRun(
        stdout=proc.stdout,
        stderr=proc.stderr,
        data_dir=tmp / "data",
        report=demo / "report.html",
        database=demo / "esports_demo.sqlite3",
        checkpoints=demo / "markets" / "checkpoints",
        seconds=seconds,
    )
