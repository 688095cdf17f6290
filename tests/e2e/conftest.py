"""One ``edgefinder demo --report`` run per test session, shared by the demo and report tests.

The demo runs as a user would pipe it: a subprocess whose stdout is a pipe (not a terminal), with no
``COLUMNS`` and no ``EDGEFINDER_*`` variable, on a fresh data directory. It is the ``edgefinder`` of
the package's wheel installed in a fresh venv (``tests/wheel.py``), so the demo, its report and the
report's browser test see what a user who installs the wheel gets, not the checkout.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.wheel import WheelInstall, build_and_install


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
def wheel_install(tmp_path_factory: pytest.TempPathFactory) -> WheelInstall:
    """The wheel of this checkout, installed in a fresh venv (once per test session)."""
    return build_and_install(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, wheel_install: WheelInstall) -> DemoRun:
    tmp = tmp_path_factory.mktemp("demo")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("EDGEFINDER_") and k != "COLUMNS"
    }
    env["EDGEFINDER_DATA_DIR"] = str(tmp / "data")  # servers must not be needed: no URLs at all
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(wheel_install.edgefinder), "demo", "--report"],
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
