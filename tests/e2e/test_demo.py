"""`edgefinder demo` — the README's main job — runs every pipeline on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_both_pipelines_without_servers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEFINDER_")}
    # Servers must not be needed: point the URLs nowhere and leave Redis unset.
    env["EDGEFINDER_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "edgefinder", "demo"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for marker in ("Esports macro-strategy analytics", "Futures research pipeline", "research/ops",
                   "Phase 4", "Phase 5", "pending_review"):
        assert marker in out, f"{marker!r} missing from the demo summary"
    assert (tmp_path / "data" / "edgefinder.sqlite3").exists() or any((tmp_path / "data").rglob("*.sqlite3"))
    assert any((tmp_path / "data").rglob("production_playbook.json"))
