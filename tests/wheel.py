"""The package as a user installs it: ``pip wheel . --no-deps``, then the wheel in a fresh venv.

The wheel is built from a copy of ``pyproject.toml``, ``README.md`` and ``src/`` (so the build
leaves nothing in the checkout) and installed with its dependencies from pip's configured indexes
and cache (no index but the registries is contacted). ``--no-compile`` skips byte-compiling the
dependencies: the slowest part of the install, and nothing a test needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.esports_ops import REPO


@dataclass(frozen=True)
class WheelInstall:
    """A built wheel and the fresh venv it is installed in."""

    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def edgefinder(self) -> Path:
        return self.venv / "bin" / "edgefinder"

    def names(self) -> set[str]:
        """The paths inside the wheel."""
        with zipfile.ZipFile(self.wheel) as zf:
            return set(zf.namelist())


def _run(args: list[str], **kw: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEFINDER_", "PYTHON"))}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def build_and_install(tmp: Path) -> WheelInstall:
    """Build the wheel of this checkout under ``tmp`` and install it into ``tmp/venv``."""
    src = tmp / "source"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--wheel-dir", str(dist)])
    (wheel,) = dist.glob("edgefinder-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-compile", str(wheel)])
    return WheelInstall(wheel=wheel, venv=venv)
