"""Phase 5 on a small fixed trade history, against hand-computed figures.

Templates (dollars per trade; ``oos`` = out-of-sample trades, on which p, q, DSR and the families are
computed; families: A = "ROCHE_SNAP 15s long ← none", B = "ROCHE_SNAP 15s short ← ROCHE_SNAP"):

* T1: -10 x3, +20 x30, -10 x7 (40 trades; last 20 out-of-sample, family A) -> Tier 1
* T2: +5 x18, -15 x7 (25 trades, all in-sample) -> prob 19/36 = 0.528: Tier 2
* T3: 5 trades -> Tier 3
* T4: +10 x5 then -10 x20 (25 trades; last 5 out-of-sample, family B) -> prob 6/36 < 0.45: Tier 4
* T5: exactly 15 trades, 7 wins -> no tier (unclassified)
* T6: +20 x37 then -5, +5, -5 (40 trades; last 3 out-of-sample, family A) -> Tier 1 by the original
  thresholds, but its own out-of-sample mean is negative.

With ``min_family_trades=10``, family A (23 trades) is tested and qualifies, family B (5) is not
tested; inside A, T1 and T6 are shrunk toward the family mean (DerSimonian-Laird by hand) and a
member enters production when its shrunk mean is positive.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats as sps
from typer.testing import CliRunner

from edgefinder.markets.brain import BayesianBrain, TradeOutcome
from edgefinder.markets.selection import (
    STATUS_APPROVED,
    STATUS_PENDING,
    SelectionConfig,
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


FAMILY = {
    1: "ROCHE_SNAP 15s long ← none",
    6: "ROCHE_SNAP 15s long ← none",
    4: "ROCHE_SNAP 15s short ← ROCHE_SNAP",
}
CONFIG = SelectionConfig(min_family_trades=10)


def _brain() -> BayesianBrain:
    brain = BayesianBrain()
    t = 0.0
    for tid, (pnls, n_oos, (rtf, rtype)) in HISTORY.items():
        for k, p in enumerate(pnls):
            t += 60
            brain.update(
                TradeOutcome(
                    None,
                    100.0,
                    100.0,
                    p,
                    "WIN" if p > 0 else "LOSS",
                    t + 30,
                    "TARGET",
                    t,
                    t + 30,
                    30.0,
                    "LONG",
                    tid,
                    root_tf=rtf,
                    root_type=rtype,
                    out_of_sample=k >= len(pnls) - n_oos,
                    session="2024-01-02",
                    pattern_type="ROCHE_SNAP",
                    family=FAMILY.get(tid, "ROCHE_SNAP 15s long ← none"),
                )
            )
    return brain


LIBRARY = {
    tid: {
        "centroid": [float(tid)] * 11,
        "params": {
            "stop_loss_ticks": 10,
            "take_profit_ticks": 40,
            "trailing_stop_ticks": 0,
            "max_hold_seconds": 900,
        },
        "pattern_type": "ROCHE_SNAP",
        "timeframe": "15s",
        "direction_rule": "fade_z",
    }
    for tid in HISTORY
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("phase5")
    _brain().save(ckpt / "brain.pkl")
    with open(ckpt / "pattern_library.pkl", "wb") as fh:
        pickle.dump(LIBRARY, fh)
    console = Console(record=True, width=160)
    res = run_strategy_selection(ckpt, CONFIG, console=console)
    return ckpt, res, console.export_text()


def test_tiers_match_original_definitions(result) -> None:
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
    assert st.loc[1, "risk_score"] == pytest.approx(
        0.3 * 0.25 + 0.3 * 0.5 + 0.2 * 0.7 + 0.2 * 70 / 500
    )
    assert st.loc[1, "risk_level"] == "LOW"
    # T4: a loser; total PnL <= 0 -> the drawdown ratio is the cap (5), not a division by ~0
    assert st.loc[4, "max_dd"] == pytest.approx(-200.0)  # +50 then -200 from the peak
    assert st.loc[4, "max_consecutive_losses"] == 20
    assert st.loc[4, "risk_score"] == pytest.approx(0.3 * 0.8 + 0.3 * 1.0 + 0.2 * 2.0 + 0.2 * 5.0)
    assert st.loc[4, "risk_level"] == "HIGH"
    # guarded divisions directly
    assert risk_score(0.0, 0.0, -5.0, 3, -10.0, -10.0) == pytest.approx(
        0.3 + 0.3 * 5 + 0.06 + 0.2 * 5
    )
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
    # deflated Sharpe per template: n_trials = 3 tested templates; the benchmark's spread is the null
    # sampling variance of a Sharpe estimate of that many trades, 1 / (n - 1)
    x = np.array([20.0] * 13 + [-10.0] * 7)
    sr1 = x.mean() / x.std()
    dsr1 = deflated_sharpe_ratio(
        sr1, 20, 3, float(sps.skew(x)), float(sps.kurtosis(x, fisher=False)), 1 / 19
    )
    assert st.loc[1, "dsr"] == pytest.approx(dsr1)


def test_families_pool_members_and_decide_production(result) -> None:
    ckpt, res, text = result
    fam = res.families.set_index("family")
    a, b = "ROCHE_SNAP 15s long ← none", "ROCHE_SNAP 15s short ← ROCHE_SNAP"
    pa = np.array(
        [20.0] * 13 + [-10.0] * 7 + [-5.0, 5.0, -5.0]
    )  # T1's and T6's out-of-sample trades
    n, mean, sd = pa.size, pa.mean(), pa.std(ddof=1)
    assert fam.loc[a, "trades"] == 23 and fam.loc[a, "templates"] == 2
    assert fam.loc[a, "mean_pnl"] == pytest.approx(mean)
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert (fam.loc[a, "ci_low"], fam.loc[a, "ci_high"]) == (
        pytest.approx(mean - half),
        pytest.approx(mean + half),
    )
    p_a = float(sps.t.sf(mean / (sd / math.sqrt(n)), n - 1))
    assert fam.loc[a, "p_value"] == pytest.approx(p_a) and fam.loc[a, "q_value"] == pytest.approx(
        p_a
    )  # one test
    # one family tested: the deflated Sharpe is the plain PSR against 0 (no best-of-many to discount)
    sr = pa.mean() / pa.std()
    g3, g4 = float(sps.skew(pa)), float(sps.kurtosis(pa, fisher=False))
    psr = sps.norm.cdf(sr * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert fam.loc[a, "dsr"] == pytest.approx(psr)
    assert bool(fam.loc[a, "tested"]) and bool(fam.loc[a, "qualifies"])
    assert (
        not bool(fam.loc[b, "tested"])
        and not bool(fam.loc[b, "qualifies"])
        and np.isnan(fam.loc[b, "q_value"])
    )
    # members of family A, shrunk by hand: DerSimonian-Laird tau^2, random-effects mean, posterior mean
    m = np.array([np.mean(pa[:20]), np.mean(pa[20:])])
    v = sd**2 / np.array([20.0, 3.0])
    w = 1 / v
    mu_fe = (w * m).sum() / w.sum()
    q_stat = (w * (m - mu_fe) ** 2).sum()
    tau2 = max(0.0, (q_stat - 1) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    mu = (ws * m).sum() / ws.sum()
    shrunk = mu + tau2 / (tau2 + v) * (m - mu)
    mem = res.members.set_index("template_id")
    assert mem.loc[1, "shrunk_mean"] == pytest.approx(shrunk[0]) and mem.loc[
        6, "shrunk_mean"
    ] == pytest.approx(shrunk[1])
    assert mem.loc[1, "family_mu"] == pytest.approx(mu) and mem.loc[1, "tau2"] == pytest.approx(
        tau2
    )
    want = {t for t, s_ in zip((1, 6), shrunk) if s_ > 0}
    assert 1 in want
    assert set(res.production) == want
    entry = res.production[1]
    assert entry["tier"] == 1 and entry["status"] == STATUS_PENDING
    assert entry["win_rate"] == pytest.approx(31 / 51) and entry["params"] == LIBRARY[1]["params"]
    assert list(entry["families"]) == [a] and entry["families"][a]["family_trades"] == 23
    assert (
        "family ROCHE_SNAP 15s long ← none: 23 out-of-sample trades"
        in entry["families"][a]["qualified"]
    )
    with open(ckpt / "production_playbook.pkl", "rb") as fh:
        assert set(pickle.load(fh)) == want
    doc = json.loads((ckpt / "production_playbook.json").read_text())
    assert doc["status"] == STATUS_PENDING and sorted(doc["templates"]) == sorted(
        str(t) for t in want
    )
    assert doc["families_tested"] == 1 and doc["families_qualified"] == 1
    assert doc["tier1_not_in_production"] == len({1, 6} - want)
    # the report: the original tables and lines, then the evidence
    assert "TIER 1 — PRODUCTION READY (2 templates)" in text
    assert "TIER 4 — TOXIC (1 templates, EXCLUDED from production)" in text
    assert "1H Roche → lower TF entry: 1/2 Tier 1 templates (50%)" in text
    assert "1H Structural → lower TF entry: 1/2 Tier 1 templates (50%)" in text
    assert "28 trade(s): too few to support any conclusion" in text  # all 28 out-of-sample trades
    assert "2 traded, 1 with >= 10 trades tested, 1 qualify" in text
    assert "T-1 (tier 1): family ROCHE_SNAP 15s long ← none" in text
    assert (
        f"PRODUCTION PLAYBOOK: {len(want)} templates saved to" in text
        and "production_playbook.pkl" in text
    )


def test_no_out_of_sample_trades_promote_nothing(tmp_path) -> None:
    """In-sample trades chose the exit parameters: a history without out-of-sample trades promotes
    nothing, whatever its figures."""
    brain = BayesianBrain()
    for k in range(60):
        brain.update(
            TradeOutcome(
                None,
                1.0,
                1.0,
                20.0 if k % 4 else -5.0,
                "WIN",
                k,
                "TARGET",
                k,
                k,
                0.0,
                "LONG",
                1,
                family="ROCHE_SNAP 15s long ← none",
            )
        )
    console = Console(record=True, width=160)
    res = run_strategy_selection(tmp_path, CONFIG, console, brain=brain, library=LIBRARY)
    assert res.significance_sample == "all" and res.production == {}
    assert "nothing can be promoted" in console.export_text()


def test_ancestry_tests_are_welch_differences(tmp_path) -> None:
    from edgefinder.markets.selection import ancestry_tests

    rng = np.random.default_rng(0)
    deep, shallow = rng.normal(2.0, 5.0, 80), rng.normal(0.0, 5.0, 120)
    df = pd.DataFrame(
        {
            "pattern_type": "ROCHE_SNAP",
            "pnl": np.r_[deep, shallow],
            "depth": np.r_[np.full(80, 3), np.zeros(120, int)],
            "root_type": np.r_[np.full(80, "ROCHE_SNAP"), np.full(120, "")],
        }
    )
    row = ancestry_tests(df).set_index("comparison").loc["depth >= 1 vs depth 0"]
    ref = sps.ttest_ind(deep, shallow, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert row["difference"] == pytest.approx(deep.mean() - shallow.mean())
    assert row["p_value"] == pytest.approx(ref.pvalue)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_approve_playbook_command(result, tmp_path) -> None:
    import shutil

    from edgefinder.markets.cli import markets_app

    ckpt, _, _ = result
    work = tmp_path / "ck"
    shutil.copytree(ckpt, work)
    out = CliRunner().invoke(
        markets_app, ["approve-playbook", "--checkpoint-dir", str(work), "--reviewer", "ana"]
    )
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
