"""`edgefinder demo` — the README's main job — runs every pipeline on the embedded default, piped.

The session's one demo run (``demo_run`` in conftest.py: ``demo --report`` with stdout a pipe, no
``COLUMNS``) is read here for what a person sees in a log file; the report it writes is checked in a
browser by test_report_browser.py. The markets report's ``--format json|csv`` is checked on a copy of
the demo's checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from tests.cli_runs import run_edgefinder
from tests.e2e.conftest import DemoRun
from tests.terminal import broken_table_lines, table_count


def test_demo_runs_both_pipelines_without_servers(demo_run: DemoRun) -> None:
    out = demo_run.stdout
    for marker in (
        "Esports macro-strategy analytics",
        "Futures research pipeline",
        "research/ops",
        "Phase 4",
        "Phase 5",
        "pending_review",
    ):
        assert marker in out, f"{marker!r} missing from the demo summary"
    assert demo_run.database.exists()
    assert (demo_run.checkpoints / "production_playbook.json").exists()


def test_demo_tables_stay_whole_when_piped(demo_run: DemoRun) -> None:
    out = demo_run.stdout
    tables = [line for line in out.splitlines() if line.strip()[:1] in ("┏", "┃", "│", "└")]
    # the esports tables, the planted-effects table and the forward-pass table
    assert table_count(out) >= 4
    # they need more than the 80 columns Rich falls back to in a pipe, and get them, uncut and unwrapped
    assert max(len(line) for line in tables) > 80
    assert broken_table_lines(out) == []


def test_demo_report_writes_the_page_and_prints_its_path(demo_run: DemoRun) -> None:
    line = next(x for x in demo_run.stdout.splitlines() if x.startswith("report: "))
    assert Path(line.removeprefix("report: ").strip()) == demo_run.report
    html = demo_run.report.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    # self-contained: plotly.js embedded (megabytes), nothing loaded from elsewhere
    assert (
        len(html) > 3_000_000
        and "<script src=" not in html
        and '<link rel="stylesheet"' not in html
    )
    assert 'id="esports"' in html and 'id="futures"' in html


def test_markets_report_as_csv_and_json_for_a_pipe(demo_run: DemoRun, tmp_path: Path) -> None:
    ckpt = shutil.copytree(demo_run.checkpoints, tmp_path / "checkpoints")
    csv = run_edgefinder(
        ["markets", "run", "--strategy-report", "--checkpoint-dir", str(ckpt), "--format", "csv"],
        tmp_path,
    )
    assert csv.returncode == 0, csv.stderr[-2000:]
    assert "Phase 5" in csv.stderr  # the printed report goes to stderr, the rows to stdout
    from io import StringIO

    got = pd.read_csv(StringIO(csv.stdout))
    written = pd.read_csv(ckpt / "phase5_templates.csv")
    pd.testing.assert_frame_equal(got, written)
    assert len(got) == len(json.loads((ckpt / "pattern_library.json").read_text())["library"])

    js = run_edgefinder(
        ["markets", "run", "--strategy-report", "--checkpoint-dir", str(ckpt), "--format", "json"],
        tmp_path,
    )
    assert js.returncode == 0, js.stderr[-2000:]
    doc = json.loads(js.stdout)
    assert doc["purpose"] == "research/ops" and "betting" in doc["disclaimer"]
    assert [t["template_id"] for t in doc["templates"]] == written["template_id"].tolist()
    fam = pd.read_csv(ckpt / "phase5_families.csv")
    assert [f["family"] for f in doc["selection"]["families"]] == fam["family"].tolist()
    playbook = json.loads((ckpt / "production_playbook.json").read_text())
    assert set(doc["selection"]["production"]) == set(playbook["templates"])

    bad = run_edgefinder(
        [
            "markets",
            "run",
            "--checkpoint-dir",
            str(ckpt),
            "--data",
            str(tmp_path),
            "--format",
            "csv",
        ],
        tmp_path,
    )
    assert (
        bad.returncode == 1 and "--strategy-report" in bad.stderr and "Traceback" not in bad.stderr
    )
