"""Phases 4–5 end to end on synthetic ATLASes (issue 5, done-when 1–4).

The no-edge year is a real synthetic year (250 sessions, train/test split at two thirds: sessions
1–167 in-sample, 168–250 out-of-sample; seeds 0–4 all give an empty playbook and p > 0.98) with the
hierarchy 1h, 15m, 5m, 1m, 15s and 5 Optuna trials per template (the statements do not depend on
the search quality). The planted-edge year uses ``PLANTED_SESSIONS`` (120), ``PLANTED_TFS`` and
``PLANTED_TRAIN_UNTIL`` (split at one half; see their comments): at 250 sessions split at two
thirds the planted family spreads over ~20 small templates and only 2 of 5 seeds give one with
enough out-of-sample trades for q <= 0.10, so that setting would test luck, not the pipeline.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from edgefinder.markets import atlas
from edgefinder.markets.clustering import pattern_features
from edgefinder.markets.discovery import load_manifest
from edgefinder.markets.forward import (
    JOURNAL,
    REPORT,
    ForwardConfig,
    ForwardError,
    FractalCascadeScanner,
    candidate_features,
    run_forward_pass,
)
from edgefinder.markets.orchestrator import Orchestrator
from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

pytestmark = pytest.mark.slow

SESSIONS = 250
TRAIN_UNTIL = session_dates(SynthConfig().start, SESSIONS)[167].isoformat()  # sessions 168.. are OOS
TFS = ["1h", "15m", "5m", "1m", "15s"]
#: The planted family is a 15s snap with a velocity spike (synth.PlantedEdge). A 15s entry needs
#: parents at every level above; a shallow hierarchy keeps most planted snaps as candidates.
PLANTED_TFS = ["5m", "1m", "15s"]
#: Split at one half for the planted year: the family spreads over a few templates of ~100 members
#: each, and Tier 1 needs > 30 forward trades per template plus q <= 0.10 on its out-of-sample trades.
#: Twice as many forward sessions as training sessions gives each template enough of both (measured:
#: seeds 3, 4, 5 all pass at one half; at two thirds seed 4's family stops at 19–29 trades each).
PLANTED_SESSIONS = 120
PLANTED_TRAIN_UNTIL = session_dates(SynthConfig().start, PLANTED_SESSIONS)[60].isoformat()
ITER = 5


def _quiet() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=160)


def _pipeline(root: Path, edge: str, tfs: list[str], seed: int = 3, sessions: int = SESSIONS,
              train_until: str | None = TRAIN_UNTIL, iterations: int = ITER):
    data, ck = root / "atlas", root / "ck"
    generate_atlas(data, SynthConfig(sessions=sessions, seed=seed, edge=edge))  # type: ignore[arg-type]
    orch = Orchestrator(data, ck, iterations=iterations, train_until=train_until, timeframes=tfs, seed=seed,
                        dashboard=False, console=_quiet())
    orch.run()
    fwd = orch.run_forward_pass(day_lines=False)
    sel = orch.run_strategy_selection()
    return data, ck, fwd, sel


@pytest.fixture(scope="module")
def none_run(tmp_path_factory):
    return _pipeline(tmp_path_factory.mktemp("fwd_none"), "none", TFS)


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    return _pipeline(tmp_path_factory.mktemp("fwd_planted"), "planted", PLANTED_TFS,
                     sessions=PLANTED_SESSIONS, train_until=PLANTED_TRAIN_UNTIL)


def _report(ck: Path) -> dict:
    return json.loads((ck / REPORT).read_text())


# ------------------------------------------------------------------------------ done-when 1


def test_no_edge_year_has_empty_playbook_and_no_oos_edge(none_run) -> None:
    """A martingale: nothing may reach production, and out-of-sample trades show no edge."""
    _, ck, fwd, sel = none_run
    rep = _report(ck)
    assert rep["complete"] and rep["sessions_processed"] == SESSIONS
    assert rep["timeframes"] == TFS and rep["entry_timeframe"] == "15s"
    oos = rep["out_of_sample"]
    assert rep["in_sample"]["days"] == 167 and oos["days"] == SESSIONS - 167
    assert oos["total_trades"] >= 30  # enough trades for the test below to have power
    assert oos["p_value_mean_pnl_gt_0"] > 0.05  # not significantly above zero
    assert sel.production == {}
    doc = json.loads((ck / "production_playbook.json").read_text())
    assert doc["templates"] == {} and doc["status"] == "pending_review"
    # every trade is stamped with bar times inside the data and its session's sample
    tr = fwd.trades
    assert (tr["exit_time"] >= tr["entry_time"]).all()
    assert ((tr["entry_time"] >= rep["train_until"]) == tr["out_of_sample"]).all()


def test_cascade_equals_discovery_at_the_entry_level(none_run) -> None:
    """The forward cascade finds exactly discovery's entry-level patterns and chains on the same bars,
    and its vectorized 11D features equal clustering.pattern_features."""
    data, ck, _, _ = none_run
    with open(ck / "state.json") as fh:
        t_until = json.load(fh)["phases"]["discovery"]["train_until"]
    scanner = FractalCascadeScanner(TFS, "15s")
    states = scanner.compute_states(data, end=t_until)
    cand = scanner.scan(states)
    manifest = [p for p in load_manifest(ck / "manifest.parquet") if p.timeframe == "15s"]
    assert len(cand) == len(manifest) > 0
    events = cand.events(states=states["15s"])
    for ev, ref in zip(events, manifest):
        assert (ev.timestamp, ev.pattern_type, ev.depth) == (ref.timestamp, ref.pattern_type, ref.depth)
        assert ev.parent_chain == ref.parent_chain
        assert ev.state == ref.state
    np.testing.assert_array_equal(candidate_features(cand), pattern_features(manifest))
    # one session's cascade is the slice of candidates whose bar opens in that session
    # a session holding the middle entry pattern (with a 1h root, many sessions hold none)
    day = next(d for d in session_dates(SynthConfig().start, SESSIONS)
               if atlas.session_bounds(d)[0] <= manifest[len(manifest) // 2].timestamp < atlas.session_bounds(d)[1])
    idx = scanner.scan_session(day, cand)
    lo, hi = atlas.session_bounds(day)
    assert idx.size and all(lo <= manifest[i].timestamp < hi for i in idx)
    assert sum(lo <= p.timestamp < hi for p in manifest) == idx.size


# ------------------------------------------------------------------------------ done-when 2


def test_planted_family_reaches_tier1_and_production_with_oos_profit(planted_run) -> None:
    data, ck, fwd, sel = planted_run
    truth = json.loads((data / "ground_truth.json").read_text())
    trig_close = {float(t["bar_close"]) for t in truth["triggers"]}
    tr = fwd.trades.copy()
    tr["planted"] = tr["entry_time"].isin(trig_close)
    share = tr.groupby("template_id")["planted"].mean()
    family = set(share[share >= 0.5].index)  # templates whose trades are mostly planted snaps
    assert family, "no template is dominated by the planted snaps"
    st = sel.stats.set_index("template_id")
    tier1_family = [t for t in family if st.loc[t, "tier"] == 1]
    assert tier1_family, st.loc[sorted(family), ["total", "prob", "sharpe", "tier"]].to_string()
    in_prod = [t for t in tier1_family if t in sel.production]
    assert in_prod, st.loc[tier1_family, ["p_value", "q_value", "oos_trades"]].to_string()
    for t in in_prod:
        assert sel.production[t]["oos_pnl"] > 0
        assert sel.production[t]["q_value"] <= 0.10
    oos_family = tr[tr["template_id"].isin(in_prod) & tr["out_of_sample"]]
    assert len(oos_family) > 0 and oos_family["pnl"].sum() > 0


# ------------------------------------------------------------------------------ done-when 3


def _perturbed_copy(src: Path, dst: Path, t_cut: int, seed: int = 11) -> None:
    """Copy an ATLAS, replacing every 15s bar opening at or after ``t_cut`` with a different random
    walk, and rebuild every coarser timeframe from the 15s bars (as the ATLAS would be built)."""
    base = atlas.read_bars(src, "15s")
    after = base["timestamp"].to_numpy() >= t_cut
    rng = np.random.default_rng(seed)
    shift = 0.25 * np.cumsum(np.rint(rng.normal(0, 6, int(after.sum()))))
    for col in ("open", "high", "low", "close"):
        base.loc[after, col] = base.loc[after, col].to_numpy() + shift
    base.loc[after, "volume"] = base.loc[after, "volume"].to_numpy()[::-1]
    tfs = [tf for tf in atlas.available_timeframes(src)]
    atlas.write_all_timeframes(dst, base, "15s", tfs)


def test_no_lookahead_perturbing_the_future_changes_no_earlier_decision(planted_run, tmp_path) -> None:
    data, ck, fwd, _ = planted_run
    sessions = session_dates(SynthConfig().start, PLANTED_SESSIONS)
    # mid-session, not on a 1m/5m boundary: bars of 1m and 5m straddle the cut
    t_cut = atlas.session_bounds(sessions[100])[0] + 6 * 3600 + 7 * 60 + 30
    pdata, pck = tmp_path / "atlas", tmp_path / "ck"
    _perturbed_copy(data, pdata, t_cut)
    pck.mkdir()
    for name in ("pattern_library.pkl", "clustering_scaler.pkl", "state.json"):
        shutil.copy(ck / name, pck / name)
    alt = run_forward_pass(pdata, pck, ForwardConfig())
    a, b = fwd.trades, alt.trades
    cols = ["entry_time", "template_id", "direction", "entry_price", "match_distance", "pattern_type",
            "root_tf", "root_type", "chain"]
    before_a, before_b = a[a["entry_time"] <= t_cut], b[b["entry_time"] <= t_cut]
    assert len(before_a) > 20
    pd.testing.assert_frame_equal(before_a[cols].reset_index(drop=True), before_b[cols].reset_index(drop=True))
    closed_a, closed_b = a[a["exit_time"] <= t_cut], b[b["exit_time"] <= t_cut]
    pd.testing.assert_frame_equal(closed_a.reset_index(drop=True), closed_b.reset_index(drop=True))
    # the perturbation did change what happened after the cut (the test can fail)
    after_a, after_b = a[a["entry_time"] > t_cut], b[b["entry_time"] > t_cut]
    assert len(after_a) != len(after_b) or not np.allclose(after_a["pnl"].to_numpy(), after_b["pnl"].to_numpy())


# ------------------------------------------------------------------------------ done-when 4


def _copy_inputs(ck: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("pattern_library.pkl", "clustering_scaler.pkl", "state.json"):
        shutil.copy(ck / name, dst / name)
    return dst


def test_kill_and_resume_gives_the_same_report(none_run, tmp_path) -> None:
    """A run SIGKILLed after 37 sessions (in a subprocess), plus a torn journal tail, resumes to the
    uninterrupted run's phase4_report.json; so does a run stopped with max_sessions."""
    data, ck, _, _ = none_run
    reference = (ck / REPORT).read_text()
    killed = _copy_inputs(ck, tmp_path / "killed")
    script = textwrap.dedent(f"""
        import os, signal
        from edgefinder.markets.forward import run_forward_pass
        def hook(k, day):
            if k == 36:
                os.kill(os.getpid(), signal.SIGKILL)
        run_forward_pass({str(data)!r}, {str(killed)!r}, on_session=hook)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not (killed / REPORT).exists()
    with open(killed / JOURNAL, "ab") as fh:  # a kill in the middle of the next append
        fh.write(struct.pack("<QI", 4096, 12345) + b"partial record")
    seen: list[int] = []
    res = run_forward_pass(data, killed, on_session=lambda k, d: seen.append(k))
    assert seen[0] == 37 and seen[-1] == SESSIONS - 1  # resumed after the last checkpointed session
    assert res.complete
    assert (killed / REPORT).read_text() == reference

    stopped = _copy_inputs(ck, tmp_path / "stopped")
    part = run_forward_pass(data, stopped, max_sessions=50)
    assert not part.complete and part.report["sessions_processed"] == 50
    run_forward_pass(data, stopped, max_sessions=45)
    final = run_forward_pass(data, stopped)
    assert final.complete and (stopped / REPORT).read_text() == reference
    # the brain written at the end is the uninterrupted run's
    with open(stopped / "brain.pkl", "rb") as fh, open(ck / "brain.pkl", "rb") as gh:
        assert pickle.load(fh)["table"] == pickle.load(gh)["table"]


def test_changed_inputs_restart_the_journal(none_run, tmp_path) -> None:
    """A journal written with other gates is not resumed: the run starts over with the new settings."""
    data, ck, _, _ = none_run
    work = _copy_inputs(ck, tmp_path / "ck")
    shutil.copy(ck / JOURNAL, work / JOURNAL)  # the reference run's complete journal
    replayed: list[int] = []
    resumed = run_forward_pass(data, work, on_session=lambda k, d: replayed.append(k))
    assert replayed == []  # every session came from the journal
    assert resumed.complete and (work / REPORT).read_text() == (ck / REPORT).read_text()  # nothing left to do
    seen: list[int] = []
    strict = run_forward_pass(data, work, ForwardConfig(match_distance=1.0), on_session=lambda k, d: seen.append(k))
    assert seen[0] == 0 and strict.report["config"]["match_distance"] == 1.0
    assert strict.report["gates"]["gate1_pass"] < resumed.report["gates"]["gate1_pass"]


def test_same_seed_twice_gives_the_same_report(tmp_path) -> None:
    """The whole pipeline (synth, Phases 2–5) twice with one seed: identical Phase 4 report and playbook."""
    small = dict(sessions=30, train_until=session_dates(SynthConfig().start, 30)[20].isoformat(), iterations=3)
    runs = [_pipeline(tmp_path / f"run{k}", "planted", ["5m", "1m", "15s"], seed=8, **small) for k in (0, 1)]
    (_, ck0, f0, _), (_, ck1, f1, _) = runs
    assert f0.report["all"]["total_trades"] > 0
    assert (ck0 / REPORT).read_text() == (ck1 / REPORT).read_text()
    assert (ck0 / "production_playbook.json").read_text() == (ck1 / "production_playbook.json").read_text()
    pd.testing.assert_frame_equal(f0.trades, f1.trades)


def test_cli_three_combinations(none_run, tmp_path) -> None:
    """`markets run` --forward-pass/--strategy-report: report alone, forward pass + report on the
    existing playbook (Phases 2–3 skipped), and the approve-playbook step."""
    from typer.testing import CliRunner

    from edgefinder.markets.cli import markets_app

    data, ck, _, _ = none_run
    work = tmp_path / "ck"
    shutil.copytree(ck, work)
    (work / REPORT).unlink()
    (work / JOURNAL).unlink()
    runner = CliRunner()
    # the report alone needs no ATLAS (the seed's `--strategy-report` on its own)
    r = runner.invoke(markets_app, ["run", "--checkpoint-dir", str(work), "--strategy-report"])
    assert r.exit_code == 0, r.output
    assert "=== Phase 5: Strategy Selection ===" in r.output and "Phase 4" not in r.output
    r = runner.invoke(markets_app, ["run", "--data", str(data), "--checkpoint-dir", str(work), "--forward-pass",
                                    "--strategy-report", "--min-prob", "0.05"])
    assert r.exit_code == 0, r.output
    assert "=== Phase 4 Forward Pass Complete ===" in r.output
    for line in ("Days: 250", "Total trades:", "Win rate:", "Total PnL:", "Sharpe:", "Max drawdown:",
                 "Templates fired:", "Brain coverage:", "=== Out-of-sample sessions ==="):
        assert line in r.output
    assert "Phase 2 — discovery" not in r.output  # skipped: existing playbook
    assert (work / REPORT).read_text() == (ck / REPORT).read_text()
    # a forward pass on this playbook may not call training sessions out-of-sample, nor change the hierarchy
    early = session_dates(SynthConfig().start, SESSIONS)[40].isoformat()
    for extra in (["--train-until", early], ["--timeframes", "5m,1m,15s"]):
        r = runner.invoke(markets_app, ["run", "--data", str(data), "--checkpoint-dir", str(work), "--forward-pass",
                                        *extra])
        assert r.exit_code != 0 and isinstance(r.exception, ForwardError), r.output
    assert (work / REPORT).read_text() == (ck / REPORT).read_text()  # refused before touching anything
    r = runner.invoke(markets_app, ["run", "--checkpoint-dir", str(work), "--forward-pass"])
    assert r.exit_code != 0 and "--data DIR" in str(r.exception)
    r = runner.invoke(markets_app, ["approve-playbook", "--checkpoint-dir", str(work), "--reviewer", "qa"])
    assert r.exit_code == 0 and "approved" in r.output


def test_demo_runs_phases_4_and_5(tmp_path) -> None:
    """`edgefinder demo`'s futures part reaches the forward pass and the production playbook."""
    from edgefinder.markets.demo import run
    from edgefinder.settings import Settings

    console = Console(file=io.StringIO(), width=200, record=True)
    run(Settings(data_dir=tmp_path), console)
    text = console.export_text()
    assert "Phase 4 — forward pass" in text and "out-of-sample" in text
    assert "Phase 5: Tier 1:" in text and "pending_review" in text
    ck = tmp_path / "demo" / "markets" / "checkpoints"
    rep = json.loads((ck / REPORT).read_text())
    assert rep["complete"] and rep["out_of_sample"]["days"] > 0
    assert (ck / "production_playbook.json").exists()
