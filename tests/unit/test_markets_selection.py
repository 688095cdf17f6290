"""Phase 5 (seed 003, Task C) on a small fixed trade history, against hand-computed figures.

Templates (dollars per trade; ``oos`` = out-of-sample trades, on which p/q/DSR are computed):

* T1: -10 x3, +20 x30, -10 x7 (40 trades; last 20 out-of-sample) -> Tier 1, in production
* T2: +5 x18, -15 x7 (25 trades, all in-sample) -> prob 19/36 = 0.528: Tier 2
* T3: 5 trades -> Tier 3
* T4: +10 x5 then -10 x20 (25 trades; last 5 out-of-sample) -> prob 6/36 < 0.45: Tier 4
* T5: exactly 15 trades, 7 wins -> no tier (unclassified)
* T6: +20 x37 then -5, +5, -5 (40 trades; last 3 out-of-sample) -> Tier 1 by the seed's thresholds,
  but its out-of-sample mean is negative: the BH q-gate keeps it out of production.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from rich.console import Console
from scipy import stats as sps
from typer.testing import CliRunner

from edgefinder.markets.brain import BayesianBrain, TradeOutcome
from edgefinder.markets.selection import (
    STATUS_APPROVED,
    STATUS_PENDING,
    SelectionError,
    approve_playbook,
    classify_tier,
    risk_score,
    run_strategy_selection,
)
from edgefinder.stats.performance import deflated_sharpe_ratio

HISTORY = {
    1: ([-10.0] * 3 + [20.0] * 30 + [-10.0] * 7, 20, ("1h", "ROCHE_SNAP")),
    2: ([5.0] * 18 + [-15.0] * 7, 0, ("1h", "ROCHE_SNAP")),
    3: ([1.0, -1.0, 2.0, -2.0, 3.0], 0, ("15m", "STRUCTURAL_DRIVE")),
    4: ([10.0] * 5 + [-10.0] * 20, 5, ("1h", "ROCHE_SNAP")),
    5: ([4.0] * 7 + [-4.0] * 8, 0, ("1h", "ROCHE_SNAP")),
    6: ([20.0] * 37 + [-5.0, 5.0, -5.0], 3, ("1h", "STRUCTURAL_DRIVE")),
}


def _brain() -> BayesianBrain:
    brain = BayesianBrain()
    t = 0.0
    for tid, (pnls, n_oos, (rtf, rtype)) in HISTORY.items():
        for k, p in enumerate(pnls):
            t += 60
            brain.update(TradeOutcome(
                None, 100.0, 100.0, p, "WIN" if p > 0 else "LOSS", t + 30, "TARGET", t, t + 30, 30.0, "LONG",
                tid, root_tf=rtf, root_type=rtype, out_of_sample=k >= len(pnls) - n_oos))
    return brain


LIBRARY = {tid: {"centroid": [float(tid)] * 11, "params": {"stop_loss_ticks": 10, "take_profit_ticks": 40,
                                                          "trailing_stop_ticks": 0, "max_hold_seconds": 900},
                 "pattern_type": "ROCHE_SNAP", "timeframe": "15s", "direction_rule": "fade_z"}
           for tid in HISTORY}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("phase5")
    _brain().save(ckpt / "brain.pkl")
    with open(ckpt / "pattern_library.pkl", "wb") as fh:
        pickle.dump(LIBRARY, fh)
    console = Console(record=True, width=160)
    res = run_strategy_selection(ckpt, console=console)
    return ckpt, res, console.export_text()


def test_tiers_match_seed_definitions(result) -> None:
    _, res, _ = result
    st = res.stats.set_index("template_id")
    assert st["tier"].to_dict() == {1: 1, 2: 2, 3: 3, 4: 4, 5: 0, 6: 1}
    assert st.loc[1, "prob"] == pytest.approx(31 / 51)
    assert st.loc[1, "conf"] == pytest.approx(0.40)
    assert st.loc[2, "prob"] == pytest.approx(19 / 36)
    assert st.loc[4, "prob"] == pytest.approx(6 / 36)
    # boundaries are strict, precedence 1 > 2 > 3 > 4
    assert classify_tier(0.56, 0.31, 0.51, 31) == 1
    assert classify_tier(0.56, 0.31, 0.50, 31) == 2
    assert classify_tier(0.9, 0.9, 2.0, 14) == 3
    assert classify_tier(0.44, 0.21, 0.0, 21) == 4
    assert classify_tier(0.44, 0.20, 0.0, 20) == 0
    assert classify_tier(0.50, 0.30, 1.0, 30) == 0


def test_sharpe_drawdown_streaks_risk_by_hand(result) -> None:
    _, res, _ = result
    st = res.stats.set_index("template_id")
    # T1: mean 12.5, population std 30*sqrt(0.75*0.25)
    assert st.loc[1, "sharpe"] == pytest.approx(12.5 / (30 * math.sqrt(0.75 * 0.25)))
    assert st.loc[1, "max_dd"] == pytest.approx(-70.0)  # peak 570 after the wins, then 7 x -10
    assert st.loc[1, "max_consecutive_losses"] == 7
    assert st.loc[1, "avg_win"] == 20.0 and st.loc[1, "avg_loss"] == -10.0
    assert st.loc[1, "total_pnl"] == pytest.approx(500.0)
    assert st.loc[1, "risk_score"] == pytest.approx(0.3 * 0.25 + 0.3 * 0.5 + 0.2 * 0.7 + 0.2 * 70 / 500)
    assert st.loc[1, "risk_level"] == "LOW"
    # T4: a loser; total PnL <= 0 -> the drawdown ratio is the cap (5), not a division by ~0
    assert st.loc[4, "max_dd"] == pytest.approx(-200.0)  # +50 then -200 from the peak
    assert st.loc[4, "max_consecutive_losses"] == 20
    assert st.loc[4, "risk_score"] == pytest.approx(0.3 * 0.8 + 0.3 * 1.0 + 0.2 * 2.0 + 0.2 * 5.0)
    assert st.loc[4, "risk_level"] == "HIGH"
    # guarded divisions directly
    assert risk_score(0.0, 0.0, -5.0, 3, -10.0, -10.0) == pytest.approx(0.3 + 0.3 * 5 + 0.06 + 0.2 * 5)
    assert risk_score(1.0, 5.0, 0.0, 0, 0.0, 50.0) == pytest.approx(0.0)
    assert np.isfinite(risk_score(0.5, 1e-12, -1.0, 1, -1.0, 1e-12))


def test_significance_on_out_of_sample_trades_and_q_gate(result) -> None:
    ckpt, res, text = result
    st = res.stats.set_index("template_id")
    assert res.significance_sample == "out-of-sample"

    def p_one_sided(x: list[float]) -> float:  # t statistic by hand, scipy only for the t tail
        a = np.asarray(x)
        t = a.mean() / (a.std(ddof=1) / math.sqrt(a.size))
        return float(sps.t.sf(t, a.size - 1))

    # T4's OOS trades are constant (-10 x5): no variance estimate, so the test refuses (p = 1)
    p = {1: p_one_sided([20.0] * 13 + [-10.0] * 7), 4: 1.0, 6: p_one_sided([-5.0, 5.0, -5.0])}
    for tid in (1, 4, 6):
        assert st.loc[tid, "p_value"] == pytest.approx(p[tid], rel=1e-9)
    for tid in (2, 3, 5):  # no out-of-sample trades: untested
        assert np.isnan(st.loc[tid, "p_value"]) and np.isnan(st.loc[tid, "q_value"])
    # Benjamini-Hochberg by hand over the m = 3 tested templates
    order = sorted(p, key=p.get)
    q_raw = {tid: p[tid] * 3 / (rank + 1) for rank, tid in enumerate(order)}
    q = {}
    running = 1.0
    for tid in reversed(order):
        running = min(running, q_raw[tid])
        q[tid] = running
    for tid in (1, 4, 6):
        assert st.loc[tid, "q_value"] == pytest.approx(q[tid], rel=1e-9)
    assert st.loc[1, "q_value"] <= 0.10 < st.loc[6, "q_value"]
    # deflated Sharpe: n_trials = 3 tested templates, variance of their OOS Sharpe ratios
    srs = {1: 9.5 / np.std([20.0] * 13 + [-10.0] * 7), 4: 0.0, 6: (-5 / 3) / np.std([-5.0, 5.0, -5.0])}
    var = float(np.var(list(srs.values())))
    x = np.array([20.0] * 13 + [-10.0] * 7)
    dsr1 = deflated_sharpe_ratio(srs[1], 20, 3, float(sps.skew(x)), float(sps.kurtosis(x, fisher=False)), var)
    assert st.loc[1, "dsr"] == pytest.approx(dsr1)
    # production: Tier 1 and q <= 0.10 only; T6 removed by the gate
    assert set(res.production) == {1}
    assert res.tier1_removed_by_q == 1
    entry = res.production[1]
    assert entry["tier"] == 1 and entry["status"] == STATUS_PENDING
    assert entry["win_rate"] == pytest.approx(31 / 51) and entry["params"] == LIBRARY[1]["params"]
    with open(ckpt / "production_playbook.pkl", "rb") as fh:
        assert set(pickle.load(fh)) == {1}
    doc = json.loads((ckpt / "production_playbook.json").read_text())
    assert doc["status"] == STATUS_PENDING and list(doc["templates"]) == ["1"]
    assert doc["tier1_removed_by_q"] == 1
    # the report: seed tables and lines
    assert "TIER 1 — PRODUCTION READY (2 templates)" in text
    assert "TIER 4 — TOXIC (1 templates, EXCLUDED from production)" in text
    assert "1H Roche → lower TF entry: 1/2 Tier 1 templates (50%)" in text
    assert "1H Structural → lower TF entry: 1/2 Tier 1 templates (50%)" in text
    assert "removed 1 of 2 Tier-1 templates" in text
    assert "PRODUCTION PLAYBOOK: 1 templates saved to" in text and "production_playbook.pkl" in text


def test_approve_playbook_command(result, tmp_path) -> None:
    import shutil

    from edgefinder.markets.cli import markets_app

    ckpt, _, _ = result
    work = tmp_path / "ck"
    shutil.copytree(ckpt, work)
    out = CliRunner().invoke(markets_app, ["approve-playbook", "--checkpoint-dir", str(work), "--reviewer", "ana"])
    assert out.exit_code == 0, out.output
    assert "approved" in out.output
    doc = json.loads((work / "production_playbook.json").read_text())
    assert doc["status"] == STATUS_APPROVED and doc["reviewer"] == "ana" and doc["reviewed_at"]
    assert doc["templates"]["1"]["status"] == STATUS_APPROVED
    with open(work / "production_playbook.pkl", "rb") as fh:
        assert pickle.load(fh)[1]["status"] == STATUS_APPROVED
    with pytest.raises(SelectionError, match="already approved"):
        approve_playbook(work, "bob")
    with pytest.raises(SelectionError, match="no production playbook"):
        approve_playbook(tmp_path / "nowhere")
