"""The ``edgefinder`` command as a user runs it: a new process whose settings are only what the test
passes (no ``EDGEFINDER_*`` variable of the test run leaks in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without ``EDGEFINDER_*`` variables, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFINDER_")}
    env.update(settings)
    return env


def run_edgefinder(
    args: list[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m edgefinder ARGS`` in ``cwd`` (captured text output; ``env`` defaults to
    :func:`clean_env`)."""
    return subprocess.run(
        [sys.executable, "-m", "edgefinder", *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
