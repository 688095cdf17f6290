"""Phases 2–3 end to end on a small synthetic ATLAS: checkpoints, resume, --fresh, --train-until,
same seed → identical templates and library, and the CLI."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from edgefinder.errors import EdgefinderError
from edgefinder.markets import atlas
from edgefinder.markets.discovery import load_manifest
from edgefinder.markets.orchestrator import Orchestrator, PipelineError, resolve_train_until
from edgefinder.markets.synth import SynthConfig, generate_atlas

ITER = 6
TFS = ["1h", "15m", "5m", "1m", "15s"]


def _quiet() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=120)


@pytest.fixture(scope="module")
def atlas_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("markets_e2e") / "atlas"
    generate_atlas(root, SynthConfig(sessions=30, seed=5, edge="planted"))
    return root


@pytest.fixture(scope="module")
def first_run(atlas_root, tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck_a")
    orch = Orchestrator(atlas_root, ck, iterations=ITER, timeframes=TFS, seed=1, console=_quiet())
    summary = orch.run()
    return ck, summary


def _templates(ck):
    with open(ck / "templates.pkl", "rb") as fh:
        return pickle.load(fh)


def _library(ck):
    with open(ck / "pattern_library.pkl", "rb") as fh:
        return pickle.load(fh)


def test_first_run_writes_every_artifact(first_run):
    ck, summary = first_run
    assert summary.ran == ["discovery", "clustering", "playbook"] and summary.resumed == []
    for name in (
        "manifest.parquet",
        "templates.pkl",
        "clustering_scaler.pkl",
        "pattern_library.pkl",
        "pattern_library.json",
        "state.json",
    ):
        assert (ck / name).is_file(), name
    manifest = load_manifest(ck / "manifest.parquet")
    assert summary.patterns == len(manifest) > 0
    lib = _library(ck)
    assert len(lib) == summary.library_templates > 0
    entry = next(iter(lib.values()))
    assert len(entry["centroid"]) == 11
    assert set(entry["params"]) == {
        "stop_loss_ticks",
        "take_profit_ticks",
        "trailing_stop_ticks",
        "max_hold_seconds",
    }
    assert (
        10 <= entry["params"]["stop_loss_ticks"] <= 25
        and 30 <= entry["params"]["take_profit_ticks"] <= 60
    )
    # every template's members are in the library (fission children replace their parent)
    assert sum(e["member_count"] for e in lib.values()) == len(manifest)
    doc = json.loads((ck / "pattern_library.json").read_text())
    assert doc["templates"] == len(lib) and set(doc["library"]) == {str(k) for k in lib}
    state = json.loads((ck / "state.json").read_text())
    assert state["phases"]["discovery"]["timeframes"] == TFS


def test_rerun_resumes_and_changes_nothing(first_run, atlas_root):
    ck, _ = first_run
    mtimes = {p.name: p.stat().st_mtime_ns for p in ck.iterdir() if p.name != "state.json"}
    lib_before = _library(ck)
    s2 = Orchestrator(
        atlas_root, ck, iterations=ITER, timeframes=TFS, seed=1, console=_quiet()
    ).run()
    assert s2.ran == [] and s2.resumed == ["discovery", "clustering", "playbook"]
    assert {p.name: p.stat().st_mtime_ns for p in ck.iterdir() if p.name != "state.json"} == mtimes
    assert _library(ck) == lib_before


def test_same_seed_gives_identical_templates_and_library(first_run, atlas_root, tmp_path):
    ck, _ = first_run
    Orchestrator(
        atlas_root, tmp_path, iterations=ITER, timeframes=TFS, seed=1, console=_quiet()
    ).run()
    t1, t2 = _templates(ck), _templates(tmp_path)
    assert [t.template_id for t in t1] == [t.template_id for t in t2]
    for a, b in zip(t1, t2):
        assert np.array_equal(a.member_indices, b.member_indices) and np.array_equal(
            a.centroid, b.centroid
        )
    assert _library(tmp_path) == _library(ck)


def test_changed_input_reruns_only_the_later_phases_and_fresh_reruns_all(
    first_run, atlas_root, tmp_path
):
    ck, _ = first_run
    # copy the checkpoints, then change only the iterations: Phase 3 alone re-runs
    for p in ck.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    s = Orchestrator(
        atlas_root, tmp_path, iterations=ITER + 1, timeframes=TFS, seed=1, console=_quiet()
    ).run()
    assert s.resumed == ["discovery", "clustering"] and s.ran == ["playbook"]
    s = Orchestrator(
        atlas_root, tmp_path, iterations=ITER, timeframes=TFS, seed=1, console=_quiet()
    ).run(fresh=True)
    assert s.ran == ["discovery", "clustering", "playbook"]
    assert _library(tmp_path) == _library(ck)


def test_train_until_excludes_later_data(first_run, atlas_root, tmp_path):
    ck, full = first_run
    cut_date = "2024-01-25"
    cut = resolve_train_until(cut_date)
    # a date means the start of that CME session (17:00 Chicago the evening before)
    assert cut == atlas.session_bounds(cut_date)[0]
    s = Orchestrator(
        atlas_root,
        tmp_path,
        iterations=ITER,
        timeframes=TFS,
        seed=1,
        train_until=cut_date,
        console=_quiet(),
    ).run()
    manifest = load_manifest(tmp_path / "manifest.parquet")
    assert manifest and max(p.timestamp for p in manifest) < cut
    assert 0 < s.patterns < full.patterns
    # the in-sample manifest is exactly the full run's patterns that lie before the cut
    # (states are causal, so data after the cut cannot change an earlier pattern)
    full_manifest = [
        p
        for p in load_manifest(ck / "manifest.parquet")
        if p.timestamp + atlas.tf_seconds(p.timeframe) <= cut
    ]
    key = lambda p: (p.depth, p.timeframe, p.timestamp, p.pattern_type)  # noqa: E731
    assert {key(p) for p in full_manifest} <= {key(p) for p in manifest}


def test_dashboard_renders_on_a_terminal(atlas_root, tmp_path):
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=120)
    Orchestrator(
        atlas_root, tmp_path, iterations=2, timeframes=["5m", "1m", "15s"], seed=0, console=con
    ).run()
    out = buf.getvalue()
    assert "patterns per level" in out and "fissions" in out and "templates" in out


def test_input_errors_are_pipeline_errors(tmp_path, atlas_root):
    with pytest.raises(PipelineError, match="data directory not found"):
        Orchestrator(tmp_path / "nope", tmp_path / "ck", console=_quiet()).run()
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="no timeframes"):
        Orchestrator(tmp_path / "empty", tmp_path / "ck", console=_quiet()).run()
    with pytest.raises(PipelineError, match="too few bars"):
        Orchestrator(
            atlas_root,
            tmp_path / "ck",
            console=_quiet(),
            timeframes=["1D", "1h"],
            train_until="2024-01-10",
        ).run()
    with pytest.raises(PipelineError, match="train-until"):
        Orchestrator(atlas_root, tmp_path / "ck", console=_quiet(), train_until="not a date")


def test_cli_run_and_one_line_errors(atlas_root, tmp_path):
    from edgefinder.cli import app

    runner = CliRunner()
    ck = tmp_path / "ck"
    args = [
        "markets",
        "run",
        "--data",
        str(atlas_root),
        "--checkpoint-dir",
        str(ck),
        "--no-dashboard",
        "--iterations",
        "3",
        "--timeframes",
        "5m,1m,15s",
        "--seed",
        "2",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Phase 3" in res.output and (ck / "pattern_library.pkl").is_file()
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "resumed" in res.output
    res = runner.invoke(
        app, ["markets", "run", "--data", str(tmp_path / "missing"), "--checkpoint-dir", str(ck)]
    )
    assert res.exit_code != 0 and isinstance(res.exception, EdgefinderError)
    proc = subprocess.run(
        [sys.executable, "-m", "edgefinder", "markets", "run", "--data", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "data directory not found" in lines[0]
