"""Real imports and simulated matches analysed together: no run may crash, every CI stays a probability.

Two databases, each filled and analysed by the ``edgefinder`` command as a user runs it: the awpy
tables (5 CS maps, no money) plus simulated matches of both simulator modes in one SQLite file (the
mix made the hand-written logistic solver raise ``LinAlgError: Singular matrix``), and the ESEA
import alone (its table printer raised ``TypeError`` on the ``None`` effect of a test that could
not run). Asserted: exit code 0, the tables printed, the stored run succeeded, every causal CI of a
probability difference within [-1, 1], outcome mechanisms flagged and never in the run's top list.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli_runs import clean_env, run_edgefinder

pytestmark = pytest.mark.slow
KEY = "mixed-sources-key"


def _cli(url: str, tmp: Path, *args: str) -> str:
    env = clean_env(EDGEFINDER_PSEUDONYM_KEY=KEY, EDGEFINDER_DATA_DIR=str(tmp), COLUMNS="160")
    r = run_edgefinder(["--database-url", url, *args], env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def _stored(db: Path) -> tuple[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        run_id, status, summary = conn.execute(
            "SELECT run_id, status, summary FROM analysis_runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        assert status == "succeeded", summary
        rows = conn.execute(
            "SELECT feature, outcome, method, effect, ci_low, ci_high, outcome_mechanism, summary "
            "FROM correlation_results JOIN analysis_runs USING (run_id) WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    return summary, rows


def _check_run(db: Path) -> None:
    summary, rows = _stored(db)
    assert rows
    causal = [r for r in rows if r[2] in ("aipw_within", "aipw_naive", "opening_within")]
    assert causal
    for feature, _, method, effect, lo, hi, *_ in causal:
        for v in (effect, lo, hi):
            assert v is None or -1.0 <= v <= 1.0, (feature, method, effect, lo, hi)
    mechanisms = {r[0] for r in rows if r[6]}
    assert {"kills", "deaths", "opening_kill"} <= mechanisms
    assert not any(f'"{m}"' in (summary or "") for m in ("kills", "deaths", "opening_kill"))


def test_awpy_and_simulated_matches_in_one_database(shared_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "mixed.db"
    url = f"sqlite:///{db}"
    awpy = tmp_path / "awpy.jsonl"
    _cli(url, tmp_path, "esports", "import", "--format", "awpy",
         str(shared_dir / "data" / "esports_real" / "portfolio-eg"), "--out", str(awpy))  # fmt: skip
    _cli(url, tmp_path, "esports", "ingest", "--from-file", str(awpy), "--no-progress")
    for mode in ("counts", "rounds"):
        sim = tmp_path / f"{mode}.jsonl"
        _cli(url, tmp_path, "esports", "simulate", "--matches", "4", "--seed", "3",
             "--dynamics", mode, "--out", str(sim))  # fmt: skip
        _cli(url, tmp_path, "esports", "ingest", "--from-file", str(sim), "--no-progress")
    out = _cli(url, tmp_path, "esports", "analyze", "--top", "5")
    assert "Causal effect of each intent" in out
    _check_run(db)


def test_esea_import_analyzes(shared_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "esea.db"
    url = f"sqlite:///{db}"
    esea = tmp_path / "esea.jsonl"
    _cli(url, tmp_path, "esports", "import", "--format", "esea",
         str(shared_dir / "data" / "esports_real" / "tiangefei.github.io"), "--out", str(esea))  # fmt: skip
    _cli(url, tmp_path, "esports", "ingest", "--from-file", str(esea), "--no-progress")
    out = _cli(url, tmp_path, "esports", "analyze", "--top", "5")
    assert "team-rounds" in out
    summary, rows = _stored(db)
    assert rows
