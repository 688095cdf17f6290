"""Phase 5: strategy selection, risk scoring and the production playbook.

Inputs (all under ``checkpoint_dir``): ``brain.pkl`` (Phase 4's BayesianBrain with its trade history),
``pattern_library.pkl`` (Phase 3), and, when present, ``phase4_regret.parquet`` (per-trade regret
markers). Outputs: ``production_playbook.pkl`` (the original ``{template_id: {...}}`` layout) and its
JSON twin ``production_playbook.json``, both ``pending_review`` until ``edgefinder markets
approve-playbook`` marks them ``approved``; ``phase5_templates.csv``, ``phase5_families.csv`` and
``phase5_ancestry.csv`` (the ancestry comparisons, :func:`ancestry_tests`).

**The original report, as originally defined** (docs/decisions.md §D25, §D26). Per template (dollars
per contract net of costs; Sharpe per trade): brain wins/losses/total, ``prob`` = (wins + 1) /
(total + 11), ``conf`` = min(total / 100, 1); ``sharpe`` = mean / std (population std), ``max_dd``,
``avg_win``, ``avg_loss``, ``max_consecutive_losses``, ``win_rate``, ``total_pnl``; the four tiers
with the original thresholds (settings, strict inequalities, precedence 1 → 4; a template matching
none is UNCLASSIFIED):

  - TIER 1 (production): prob > 0.55 and conf > 0.30 and sharpe > 0.5 and total > 30
  - TIER 2 (promising):  prob > 0.50 and conf > 0.20 and total > 15
  - TIER 3 (unproven):   total < 15
  - TIER 4 (toxic):      prob < 0.45 and total > 20

and the guarded risk score 0.3 (1 − win_rate) + 0.3 loss_ratio + 0.2 (max_consecutive_losses / 10)
+ 0.2 dd_ratio (a ratio whose denominator is <= 0 is ``ratio_cap`` when its numerator is non-zero,
both capped at ``ratio_cap``); LOW < 0.5 <= MEDIUM < 1.0 <= HIGH.

**Production follows the evidence, not the tiers.** The original Tier 1 asks a win probability above
0.55 under a Beta(1, 10)-like prior: an asymmetric exit (stop 15 ticks, target 40) that wins 40 % of
the time and earns after costs can never get there, while a many-small-wins template can be Tier 1
and lose money. So entry into production is decided on **out-of-sample expectancy net of costs**,
pooled where the evidence is:

1. Every out-of-sample trade (sessions from ``--train-until`` on; in-sample trades fed the parameter
   search) belongs to a **family** — pattern type × entry timeframe × direction × root context
   (``replay.family_key``). A family with at least ``min_family_trades`` trades is tested:
   one-sided t-test of mean PnL > 0, **Benjamini-Hochberg q** across every family tested, and the
   **deflated Sharpe ratio** against the best of that many zero-edge families of its size.
2. A family qualifies when q <= ``q_max``, DSR >= ``dsr_min`` and its mean is positive.
3. Inside a qualifying family each template's trades (its *member* cell) get an **empirical-Bayes
   shrunk mean** toward the family's (``stats.pooling.shrink_means``): an edge spread over many small
   templates is still found, and a member whose own trades clearly lose is left out. A member with a
   positive shrunk mean enters production for that family; a template may enter for several.

Without out-of-sample trades nothing is promoted. The report prints the tiers exactly as originally
defined, then the families, how each production entry qualified, the **power** of the test sample
(the smallest mean PnL per trade the test detects at 80 % power), regret figures per template, and
the **ancestry analysis** in numbers: do deeper or Roche-rooted chains earn more than shallow ones
(difference in mean PnL per trade with its 95 % CI and p, Welch's t-test, out-of-sample trades,
within each entry pattern type).
"""

from __future__ import annotations

import datetime as _dt
import json
import pickle
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, SupportsInt, cast

import numpy as np
import pandas as pd
from rich.console import Console

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError
from edgefinder.jsonsafe import jsonable
from edgefinder.markets._io import atomic_pickle, atomic_write_text
from edgefinder.markets.brain import BayesianBrain, BrainFileError
from edgefinder.markets.checkpoints import (
    BRAIN,
    PLAYBOOK_JSON,
    PLAYBOOK_PKL,
    REGRET,
    SELECTION_ANCESTRY_CSV,
    SELECTION_CSV,
    SELECTION_FAMILIES_CSV,
    load_library,
)
from edgefinder.markets.context import context_splits
from edgefinder.markets.metalabel import META_FILE, META_TAG, context_profile, fit_meta_model
from edgefinder.markets.summary import (
    NO_ROOT,
    STATUS_APPROVED,
    STATUS_PENDING,
    TIER_NAMES,
    ancestry_table,
    money,
    sample_block,
)
from edgefinder.markets.views import print_report
from edgefinder.settings import setting_default
from edgefinder.stats.multiple import multiple_test_correction
from edgefinder.stats.performance import (
    deflated_sharpe_ratio,
    max_consecutive_losses,
    max_drawdown,
    mean_difference,
    mean_pnl_test,
    sharpe,
)
from edgefinder.stats.pooling import shrink_means
from edgefinder.stats.power import minimum_detectable_mean

__all__ = [
    "PLAYBOOK_JSON",
    "PLAYBOOK_PKL",
    "STATUS_APPROVED",
    "STATUS_PENDING",
    "TIER_NAMES",
    "SelectionConfig",
    "SelectionError",
    "SelectionResult",
    "ancestry_tests",
    "approve_playbook",
    "classify_tier",
    "family_evidence",
    "load_production_playbook",
    "risk_score",
    "run_strategy_selection",
    "template_stats",
]


class SelectionError(EdgefinderError):
    """Phase 5 cannot run (no brain from Phase 4, no library) or a review action is invalid."""


@dataclass(frozen=True)
class SelectionConfig:
    """Phase 5 settings (``markets run`` flags; defaults in :class:`edgefinder.settings.Settings`).

    Production: ``q_max`` — BH q a family needs; ``dsr_min`` — deflated Sharpe it needs;
    ``min_family_trades`` — out-of-sample trades below which a family is not tested. The original
    tiers: ``tier1_prob`` / ``tier1_conf`` / ``tier1_sharpe`` / ``tier1_trades``, ``tier2_prob`` /
    ``tier2_conf`` / ``tier2_trades``, ``tier3_trades``, ``tier4_prob`` / ``tier4_trades`` (strict
    inequalities, as originally written). Risk: ``ratio_cap`` caps the two ratios;
    ``risk_low`` / ``risk_high`` are the level cut-offs.
    """

    q_max: float = setting_default("q_max")
    dsr_min: float = setting_default("dsr_min")
    min_family_trades: int = setting_default("min_family_trades")
    tier1_prob: float = setting_default("tier1_prob")
    tier1_conf: float = setting_default("tier1_conf")
    tier1_sharpe: float = setting_default("tier1_sharpe")
    tier1_trades: int = setting_default("tier1_trades")
    tier2_prob: float = setting_default("tier2_prob")
    tier2_conf: float = setting_default("tier2_conf")
    tier2_trades: int = setting_default("tier2_trades")
    tier3_trades: int = setting_default("tier3_trades")
    tier4_prob: float = setting_default("tier4_prob")
    tier4_trades: int = setting_default("tier4_trades")
    ratio_cap: float = 5.0
    risk_low: float = 0.5
    risk_high: float = 1.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SelectionConfig:
        """The fields that are settings (same names) from ``settings``, replaced by non-None overrides."""
        vals = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        vals.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**vals)


def classify_tier(
    prob: float, conf: float, sharpe_ratio: float, total: int, config: SelectionConfig | None = None
) -> int:
    """The original tier (1–4) with precedence 1, 2, 3, 4; 0 when no tier's conditions hold."""
    c = config or SelectionConfig()
    if (
        prob > c.tier1_prob
        and conf > c.tier1_conf
        and sharpe_ratio > c.tier1_sharpe
        and total > c.tier1_trades
    ):
        return 1
    if prob > c.tier2_prob and conf > c.tier2_conf and total > c.tier2_trades:
        return 2
    if total < c.tier3_trades:
        return 3
    if prob < c.tier4_prob and total > c.tier4_trades:
        return 4
    return 0


def risk_score(
    win_rate: float,
    avg_win: float,
    avg_loss: float,
    max_consec_losses: int,
    max_dd: float,
    total_pnl: float,
    ratio_cap: float = 5.0,
) -> float:
    """The original risk score with guarded divisions (see module doc). Dimensionless, >= 0."""
    if avg_win > 0:
        loss_ratio = min(abs(avg_loss) / avg_win, ratio_cap)
    else:
        loss_ratio = ratio_cap if avg_loss < 0 else 0.0
    if total_pnl > 0:
        dd_ratio = min(abs(max_dd) / total_pnl, ratio_cap)
    else:
        dd_ratio = ratio_cap if max_dd < 0 else 0.0
    return (
        0.3 * (1.0 - win_rate)
        + 0.3 * loss_ratio
        + 0.2 * (max_consec_losses / 10.0)
        + 0.2 * dd_ratio
    )


def risk_level(score: float, config: SelectionConfig | None = None) -> str:
    c = config or SelectionConfig()
    if score < c.risk_low:
        return "LOW"
    return "MEDIUM" if score < c.risk_high else "HIGH"


def _pnl_moments(p: np.ndarray) -> tuple[float, float]:
    """(skew, non-excess kurtosis) of trade PnL; (0, 3) when undefined."""
    if p.size >= 3 and np.ptp(p) > 0:
        from scipy import stats as sps

        return float(sps.skew(p)), float(sps.kurtosis(p, fisher=False))
    return 0.0, 3.0


def _dsr(p: np.ndarray, n_trials: int) -> float:
    """Deflated Sharpe of trade PnL ``p`` against the best of ``n_trials`` zero-edge samples of its size.

    The benchmark's spread is the sampling variance a zero-edge Sharpe estimate of ``p.size`` trades
    has (1 / (n − 1)), not the spread of the estimates across families: families differ a lot in
    size, and the smallest would dominate that spread."""
    if p.size < 3:
        return float("nan")
    sk, ku = _pnl_moments(p)
    return deflated_sharpe_ratio(
        sharpe(p), int(p.size), max(int(n_trials), 1), sk, ku, 1.0 / (p.size - 1)
    )


def _test_trades(trades: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The trades significance is computed on: out-of-sample ones when there are any, else all."""
    if len(trades) and bool(trades["out_of_sample"].any()):
        return trades[trades["out_of_sample"]], "out-of-sample"
    return trades, "all"


def template_stats(
    brain: BayesianBrain,
    library: dict[int, dict[str, Any]],
    regret: pd.DataFrame | None = None,
    config: SelectionConfig | None = None,
) -> pd.DataFrame:
    """One row per library template (plus any template only the brain knows): the original figures,
    the tier, and per template p (mean PnL > 0, test sample), BH q over templates and DSR."""
    cfg = config or SelectionConfig()
    trades = brain.trades()
    test, sample = _test_trades(trades)
    ids = sorted(set(int(t) for t in library) | set(int(t) for t in brain.table))
    # groupby keys are template ids, numpy ints (the stubs type them as any scalar)
    by_tid = (
        {int(cast(SupportsInt, k)): g for k, g in trades.groupby("template_id", sort=False)}
        if len(trades)
        else {}
    )
    test_by = (
        {
            int(cast(SupportsInt, k)): g["pnl"].to_numpy(np.float64)
            for k, g in test.groupby("template_id")
        }
        if len(test)
        else {}
    )
    eff: dict[int, tuple[float, float, float]] = {}
    if regret is not None and len(regret):
        eff = {
            int(cast(SupportsInt, k)): (
                float(v["exit_efficiency"].mean()),
                float((v["regret_type"] == "closed_too_early").mean()),
                float((v["regret_type"] == "closed_too_late").mean()),
            )
            for k, v in regret.groupby("template_id")
        }
    rows = []
    for tid in ids:
        rec = brain.table.get(tid, {"wins": 0, "losses": 0, "total": 0})
        g = by_tid.get(tid)
        pnls = g["pnl"].to_numpy(np.float64) if g is not None else np.zeros(0)
        total = int(rec["total"])
        prob, conf = brain.get_probability(tid), brain.get_confidence(tid)
        if pnls.size > 1:
            sr, mdd = sharpe(pnls), max_drawdown(pnls)
            avg_win = float(pnls[pnls > 0].mean()) if (pnls > 0).any() else 0.0
            avg_loss = float(pnls[pnls < 0].mean()) if (pnls < 0).any() else 0.0
        else:  # the original "len(pnls) > 1" rule: one trade gives no Sharpe, drawdown or averages
            sr, mdd, avg_win, avg_loss = 0.0, 0.0, 0.0, 0.0
        streak = max_consecutive_losses(pnls) if pnls.size else 0
        wr = rec["wins"] / total if total else 0.0
        tot_pnl = float(pnls.sum())
        risk = risk_score(wr, avg_win, avg_loss, streak, mdd, tot_pnl, cfg.ratio_cap)
        tp = test_by.get(tid, np.zeros(0))
        oos = (
            g.loc[g["out_of_sample"], "pnl"].to_numpy(np.float64) if g is not None else np.zeros(0)
        )
        if g is not None and len(g):
            roots = g["root_tf"].replace("", NO_ROOT) + "|" + g["root_type"].replace("", NO_ROOT)
            counts = roots.value_counts()
            root = sorted(counts[counts == counts.max()].index)[0]
        else:
            root = f"{NO_ROOT}|{NO_ROOT}"
        root_tf, root_type = root.split("|")
        lib = library.get(tid, {})
        e = eff.get(tid, (float("nan"), float("nan"), float("nan")))
        rows.append(
            {
                "template_id": tid,
                "wins": int(rec["wins"]),
                "losses": int(rec["losses"]),
                "total": total,
                "prob": prob,
                "conf": conf,
                "win_rate": wr,
                "sharpe": sr,
                "max_dd": mdd,
                "avg_win": avg_win,
                "avg_loss": avg_loss,
                "max_consecutive_losses": int(streak),
                "total_pnl": tot_pnl,
                "mean_pnl": float(pnls.mean()) if pnls.size else 0.0,
                "risk_score": risk,
                "risk_level": risk_level(risk, cfg),
                "tier": classify_tier(prob, conf, sr, total, cfg),
                "test_trades": int(tp.size),
                "p_value": mean_pnl_test(tp) if tp.size >= 2 else np.nan,
                "test_sharpe": sharpe(tp) if tp.size >= 2 else np.nan,
                "oos_trades": int(oos.size),
                "oos_pnl": float(oos.sum()),
                "oos_mean_pnl": float(oos.mean()) if oos.size else np.nan,
                "mean_exit_efficiency": e[0],
                "share_too_early": e[1],
                "share_too_late": e[2],
                "root_tf": root_tf,
                "root_type": root_type,
                "pattern_type": lib.get("pattern_type", ""),
                "timeframe": lib.get("timeframe", ""),
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    _, q = multiple_test_correction(df["p_value"].to_numpy(np.float64), alpha=cfg.q_max)
    df["q_value"] = q
    tested = df["p_value"].notna().to_numpy()
    n_trials = int(tested.sum())
    df["dsr"] = [
        (_dsr(test_by[int(t)], n_trials) if ok else np.nan)
        for t, ok in zip(df["template_id"].tolist(), tested.tolist())
    ]
    df.attrs["significance_sample"] = sample
    return df


FAMILY_COLUMNS = (
    "family",
    "pattern_type",
    "direction",
    "root",
    "trades",
    "templates",
    "mean_pnl",
    "sd_pnl",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "dsr",
    "minimum_detectable",
    "tested",
    "qualifies",
)


def family_evidence(
    test: pd.DataFrame, config: SelectionConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(families, members) on the test trades (columns ``family``, ``template_id``, ``pnl``).

    ``families``: one row per family — trades, templates, mean PnL with its 95 % t CI, one-sided p,
    BH q over the tested families, DSR (trials = families tested), the minimum detectable mean at 80 %
    power, ``tested`` and ``qualifies``. ``members``: one row per (family, template) of a qualifying
    family — trades, own mean, shrunk mean and posterior sd, ``promoted`` (shrunk mean > 0).
    """
    from scipy import stats as sps

    cfg = config or SelectionConfig()
    if test.empty:
        return pd.DataFrame(columns=list(FAMILY_COLUMNS)), pd.DataFrame()
    rows = []
    for fam, g in test.groupby("family", sort=True):
        p = g["pnl"].to_numpy(np.float64)
        n = int(p.size)
        mean = float(p.mean())
        sd = float(p.std(ddof=1)) if n > 1 else float("nan")
        half = float(sps.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
        parts = str(fam).split(" ← ")
        head = parts[0].split(" ")
        meta = str(fam).endswith(META_TAG)
        rows.append(
            {
                "family": fam,
                "pattern_type": head[0],
                "direction": "both" if meta else head[-1] if len(head) > 2 else "",
                "root": parts[1] if len(parts) > 1 else "",
                "trades": n,
                "templates": int(g["template_id"].nunique()),
                "mean_pnl": mean,
                "sd_pnl": sd,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "p_value": mean_pnl_test(p) if n >= 2 else np.nan,
                "minimum_detectable": minimum_detectable_mean(n, sd),
                "tested": n >= cfg.min_family_trades,
            }
        )
    fam_df = pd.DataFrame(rows)
    tested = fam_df["tested"].to_numpy(bool)
    pv = np.where(tested, fam_df["p_value"].to_numpy(np.float64), np.nan)
    _, q = multiple_test_correction(pv, alpha=cfg.q_max)
    fam_df["q_value"] = q
    n_trials = int(tested.sum())
    by_fam = {f: g["pnl"].to_numpy(np.float64) for f, g in test.groupby("family")}
    fam_df["dsr"] = [
        (_dsr(by_fam[f], n_trials) if ok else np.nan)
        for f, ok in zip(fam_df["family"].tolist(), tested.tolist())
    ]
    fam_df["qualifies"] = (
        tested
        & (fam_df["q_value"].fillna(1.0).to_numpy() <= cfg.q_max)
        & (fam_df["dsr"].fillna(0.0).to_numpy() >= cfg.dsr_min)
        & (fam_df["mean_pnl"].to_numpy() > 0)
    )
    members = []
    r: Any
    c: Any  # itertuples rows: their fields are column values (the stubs type each as any scalar)
    for r in fam_df[fam_df["qualifies"]].itertuples(index=False):
        g = test[test["family"] == r.family]
        cells = g.groupby("template_id")["pnl"].agg(["size", "mean"]).reset_index()
        # each member's sampling variance from the family's spread: a member's own few trades
        # estimate their spread too badly to weigh them
        var = (r.sd_pnl**2) / cells["size"].to_numpy(np.float64)
        sh = shrink_means(cells["mean"].to_numpy(np.float64), var)
        for j, c in enumerate(cells.itertuples(index=False)):
            members.append(
                {
                    "family": r.family,
                    "template_id": int(c.template_id),
                    "trades": int(c.size),
                    "mean_pnl": float(c.mean),
                    "shrunk_mean": float(sh.shrunk[j]),
                    "posterior_sd": float(sh.posterior_sd[j]),
                    "family_mu": sh.mu,
                    "tau2": sh.tau2,
                    "promoted": bool(sh.shrunk[j] > 0),
                }
            )
    return fam_df[list(FAMILY_COLUMNS)], pd.DataFrame(members)


ANCESTRY_COLUMNS = (
    "pattern_type",
    "comparison",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
)


def ancestry_tests(test: pd.DataFrame) -> pd.DataFrame:
    """Does the ancestry or the coarser timeframes' state at entry change what a trade earns? Per entry
    pattern type, on the test trades (columns ``pattern_type``, ``depth``, ``root_type``, ``pnl`` and
    the ``ctx_*`` context columns when present): Welch differences of mean PnL per trade (dollars)
    with 95 % CI and two-sided p for backed (depth >= 1) vs unbacked (depth 0), the deepest chains
    seen vs the rest, Roche-rooted vs structure-rooted chains, and for every context state
    (``"1h with"`` — the hour stretched the way the trade bets —, ``against``, ``calm``, ``fired``,
    ``vol high`` …; :func:`edgefinder.markets.context.context_splits`) its trades vs the rest.
    ``q_value``: Benjamini-Hochberg over every comparison in the table."""
    rows = []
    if test.empty:
        return pd.DataFrame(columns=list(ANCESTRY_COLUMNS))
    for ptype, g in test.groupby("pattern_type", sort=True):
        depth = g["depth"].to_numpy(np.int64)
        pnl = g["pnl"].to_numpy(np.float64)
        top = int(depth.max()) if depth.size else 0
        comps = [("depth >= 1 vs depth 0", depth >= 1, depth == 0)]
        if top >= 2:
            comps.append((f"depth {top} (deepest) vs shallower", depth == top, depth < top))
        backed = depth >= 1
        roche = g["root_type"].to_numpy(object) == "ROCHE_SNAP"
        comps.append(("Roche root vs structural root", backed & roche, backed & ~roche))
        comps += [(f"{name} vs rest", m, ~m) for name, m in context_splits(g).items()]
        for name, a, b in comps:
            md = mean_difference(pnl[a], pnl[b])
            rows.append(
                {
                    "pattern_type": ptype,
                    "comparison": name,
                    "n_a": md.n_a,
                    "n_b": md.n_b,
                    "mean_a": md.mean_a,
                    "mean_b": md.mean_b,
                    "difference": md.estimate,
                    "ci_low": md.ci_low,
                    "ci_high": md.ci_high,
                    "p_value": md.p_value,
                }
            )
    out = pd.DataFrame(rows, columns=list(ANCESTRY_COLUMNS))
    out["q_value"] = multiple_test_correction(out["p_value"].to_numpy(np.float64)).q_values
    return out


@dataclass(frozen=True)
class SelectionResult:
    """Phase 5 outputs: per-template ``stats``, per-family ``families`` and their ``members``, the
    ``production`` playbook, the ``tier1`` templates left out of it, the test sample's name and its
    block (``test_block``, with power), the original root-context ``ancestry`` table, the
    ``ancestry_tests`` and the meta-label record (``meta``: its cross-validation, threshold, gated
    out-of-sample trades and the context they share; empty when no model was fitted)."""

    stats: pd.DataFrame
    production: dict[int, dict[str, Any]]
    tier1_not_in_production: int
    significance_sample: str
    families: pd.DataFrame = field(default_factory=pd.DataFrame)
    members: pd.DataFrame = field(default_factory=pd.DataFrame)
    test_block: dict = field(default_factory=dict)
    ancestry: pd.DataFrame = field(default_factory=pd.DataFrame)
    ancestry_tests: pd.DataFrame = field(default_factory=pd.DataFrame)
    paths: tuple[Path, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


def _production(
    st: pd.DataFrame,
    families: pd.DataFrame,
    members: pd.DataFrame,
    library: dict[int, dict[str, Any]],
) -> dict[int, dict[str, Any]]:
    """The production playbook: every template with a promoted member cell, in the original layout plus
    the families it trades and how it qualified."""
    out: dict[int, dict[str, Any]] = {}
    if members.empty:
        return out
    fam = families.set_index("family")
    by_tid = st.set_index("template_id")
    m: Any  # itertuples rows: their fields are column values (the stubs type each as any scalar)
    for m in members[members["promoted"]].itertuples(index=False):
        tid = int(m.template_id)
        f = fam.loc[m.family]
        r = by_tid.loc[tid]
        lib = library.get(tid, {})
        entry = out.setdefault(
            tid,
            {
                "centroid": list(map(float, lib.get("centroid", []))),
                "params": dict(lib.get("params", {})),
                "win_rate": float(r["prob"]),
                "sharpe": float(r["sharpe"]),
                "risk_score": float(r["risk_score"]),
                "tier": int(r["tier"]),
                "trades": int(r["total"]),
                "empirical_win_rate": float(r["win_rate"]),
                "total_pnl": float(r["total_pnl"]),
                "max_drawdown": float(r["max_dd"]),
                "oos_trades": int(r["oos_trades"]),
                "oos_pnl": float(r["oos_pnl"]),
                "mean_exit_efficiency": jsonable(r["mean_exit_efficiency"]),
                "pattern_type": lib.get("pattern_type", ""),
                "timeframe": lib.get("timeframe", ""),
                "direction_rule": lib.get("direction_rule", ""),
                "families": {},
                "status": STATUS_PENDING,
            },
        )
        entry["families"][str(m.family)] = {
            "member_trades": int(m.trades),
            "member_mean_pnl": float(m.mean_pnl),
            "shrunk_mean_pnl": float(m.shrunk_mean),
            "posterior_sd": float(m.posterior_sd),
            "family_trades": int(f["trades"]),
            "family_mean_pnl": float(f["mean_pnl"]),
            "family_ci": [float(f["ci_low"]), float(f["ci_high"])],
            "family_q": float(f["q_value"]),
            "family_dsr": float(f["dsr"]),
            "qualified": (
                f"family {m.family}: {int(f['trades'])} out-of-sample trades, mean "
                f"{money(float(f['mean_pnl']))} [{money(float(f['ci_low']))}, {money(float(f['ci_high']))}], "
                f"q {float(f['q_value']):.2g}, DSR {float(f['dsr']):.2f}; this template {int(m.trades)} "
                f"trades, own mean {money(float(m.mean_pnl))}, shrunk {money(float(m.shrunk_mean))}"
            ),
        }
    return dict(sorted(out.items()))


def run_strategy_selection(
    checkpoint_dir: str | Path,
    config: SelectionConfig | None = None,
    console: Console | None = None,
    *,
    brain: BayesianBrain | None = None,
    library: dict[int, dict[str, Any]] | None = None,
    write: bool = True,
    evidence: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> SelectionResult:
    """Phase 5: rank templates, score risk, write the production playbook (pending review).

    ``evidence``: the ``(families, members)`` of :func:`family_evidence` computed by the caller
    over a wider set of tests (a study's every instrument x family, so that BH and the deflated
    Sharpe count all of them), restricted to this run's families; default: this run's alone."""
    cfg = config or SelectionConfig()
    ckpt = Path(checkpoint_dir)
    if brain is None:
        try:
            brain = BayesianBrain.load(ckpt / BRAIN)
        except BrainFileError as exc:
            raise SelectionError(f"{exc} (run the forward pass first: --forward-pass)") from None
    if library is None:
        library = load_library(ckpt, SelectionError)
    regret = pd.read_parquet(ckpt / REGRET) if (ckpt / REGRET).exists() else None
    st = template_stats(brain, library, regret, cfg)
    trades = brain.trades()
    test, sample = _test_trades(trades)
    meta_info: dict[str, Any] = {}
    if evidence is not None and sample == "out-of-sample":
        families, members = evidence
    elif sample == "out-of-sample":
        candidates, meta_info = _with_meta_families(ckpt, trades, test, write)
        families, members = family_evidence(candidates, cfg)
    else:  # in-sample trades chose the parameters: they cannot promote anything
        families, members = family_evidence(test.iloc[0:0], cfg)
    production = _production(st, families, members, library) if not st.empty else {}
    _explain_meta(production, meta_info)
    n1 = int((st["tier"] == 1).sum()) if not st.empty else 0
    n1_out = int(
        sum(
            1
            for t in (st.loc[st["tier"] == 1, "template_id"] if n1 else [])
            if int(t) not in production
        )
    )
    block = sample_block(test, int(test["session"].nunique()) if len(test) else 0, [], len(library))
    result = SelectionResult(
        st,
        production,
        n1_out,
        sample,
        families,
        members,
        block,
        ancestry_table(st) if not st.empty else pd.DataFrame(),
        ancestry_tests(test),
        meta=meta_info,
    )
    if write:
        result = SelectionResult(**{**result.__dict__, "paths": write_playbook(ckpt, result, cfg)})
    if console is not None:
        print_report(result, console, cfg)
    return result


def _with_meta_families(
    ckpt: Path, trades: pd.DataFrame, test: pd.DataFrame, write: bool
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The test trades plus, when the in-sample trades teach a meta-label gate, a copy of each gated
    out-of-sample trade in its meta family (:mod:`edgefinder.markets.metalabel`), and the record of
    the model. The model is saved for the paper trade (a stale one is removed)."""
    model = fit_meta_model(trades[~trades["out_of_sample"].to_numpy(bool)])
    if write:
        (ckpt / META_FILE).unlink(missing_ok=True)
    if model is None or test.empty:
        return test, {}
    if write:
        model.save(ckpt)
    gate = model.gate({c: test[c].to_numpy() for c in test.columns})
    gated = test[gate]
    keys = gated["pattern_type"].astype(str) + " " + gated["state_timeframe"].astype(str)
    extra = gated.assign(family=(keys + f" | {META_TAG}").to_numpy(object))
    info = {
        "threshold": model.threshold,
        "cv": model.cv,
        "oos_candidates": len(test),
        "oos_gated": int(gate.sum()),
        "context": context_profile(gated, test[~gate]),
    }
    return pd.concat([test, extra], ignore_index=True), info


def _explain_meta(production: dict[int, dict[str, Any]], meta: dict[str, Any]) -> None:
    """Say on what context each meta-label entry trades (the states its gated trades share)."""
    if not meta:
        return
    ctx = "; ".join(
        f"{c['state']} in {c['gated_share']:.0%} of gated trades vs {c['rest_share']:.0%} of the rest"
        for c in meta["context"]
    )
    cv = meta["cv"]
    for entry in production.values():
        for fam, why in entry["families"].items():
            if fam.endswith(META_TAG):
                why["context"] = ctx
                why["qualified"] += (
                    f"; meta-label p >= {meta['threshold']:.2f} (purged {cv['folds']}-fold CV on "
                    f"in-sample sessions: AUC {cv['auc']:.2f}); context: {ctx}"
                )


def write_playbook(ckpt: Path, result: SelectionResult, cfg: SelectionConfig) -> tuple[Path, ...]:
    """Write production_playbook.pkl (seed layout) + .json twin + phase5_templates.csv, phase5_families.csv
    and phase5_ancestry.csv."""
    st = result.stats
    pkl = atomic_pickle(result.production, ckpt / PLAYBOOK_PKL)
    tiers = (
        {TIER_NAMES[k]: int((st["tier"] == k).sum()) for k in TIER_NAMES} if not st.empty else {}
    )
    doc = {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "status": STATUS_PENDING,
        "reviewer": None,
        "reviewed_at": None,
        "rule": {
            "q_max": cfg.q_max,
            "dsr_min": cfg.dsr_min,
            "min_family_trades": cfg.min_family_trades,
            "sample": result.significance_sample,
        },
        "significance_sample": result.significance_sample,
        "tier_counts": tiers,
        "tier1_not_in_production": result.tier1_not_in_production,
        "families_tested": int(result.families["tested"].sum()) if len(result.families) else 0,
        "families_qualified": int(result.families["qualifies"].sum())
        if len(result.families)
        else 0,
        "test_sample": result.test_block,
        # every trial of the out-of-sample test is a family in it; the meta-label's choices were
        # made on in-sample sessions and are listed for the reviewer
        "trials": int(result.families["tested"].sum()) if len(result.families) else 0,
        "meta_label": jsonable(result.meta),
        "templates": {str(k): jsonable(v) for k, v in result.production.items()},
    }
    js = atomic_write_text(
        json.dumps(jsonable(doc), indent=2, sort_keys=True), ckpt / PLAYBOOK_JSON
    )
    csv = ckpt / SELECTION_CSV
    st.to_csv(csv, index=False)
    fcsv = ckpt / SELECTION_FAMILIES_CSV
    result.families.to_csv(fcsv, index=False)
    acsv = ckpt / SELECTION_ANCESTRY_CSV
    result.ancestry_tests.reindex(columns=list(ANCESTRY_COLUMNS)).to_csv(acsv, index=False)
    return (pkl, js, csv, fcsv, acsv)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# human review
# --------------------------------------------------------------------------------------------


def load_production_playbook(checkpoint_dir: str | Path) -> tuple[dict[int, dict[str, Any]], str]:
    """(playbook dict, status) from ``checkpoint_dir``; one-line :class:`SelectionError` when missing."""
    ckpt = Path(checkpoint_dir)
    pkl, js = ckpt / PLAYBOOK_PKL, ckpt / PLAYBOOK_JSON
    if not pkl.exists() or not js.exists():
        raise SelectionError(
            f"no production playbook in {ckpt} (run `markets run --strategy-report` first)"
        )
    try:
        with pkl.open("rb") as fh:
            production = pickle.load(fh)
        doc = json.loads(js.read_text(encoding="utf-8"))
    except Exception as exc:
        raise SelectionError(f"cannot read the production playbook in {ckpt}: {exc}") from None
    return {int(k): v for k, v in production.items()}, str(doc.get("status"))


def approve_playbook(checkpoint_dir: str | Path, reviewer: str | None = None) -> dict[str, Any]:
    """Mark the production playbook ``approved`` (the human-in-the-loop step); returns the JSON doc.

    Records the reviewer and the review time (wall clock: this is an audit record, not market data).
    """
    ckpt = Path(checkpoint_dir)
    production, status = load_production_playbook(ckpt)
    doc = json.loads((ckpt / PLAYBOOK_JSON).read_text(encoding="utf-8"))
    if status == STATUS_APPROVED:
        raise SelectionError(
            f"production playbook in {ckpt} is already approved (by {doc.get('reviewer')})"
        )
    if not production:
        raise SelectionError(
            f"production playbook in {ckpt} is empty (no family passed Phase 5's tests): "
            "nothing to approve"
        )
    when = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    for entry in production.values():
        entry["status"] = STATUS_APPROVED
    doc.update(status=STATUS_APPROVED, reviewer=reviewer or "unknown", reviewed_at=when)
    for entry in doc.get("templates", {}).values():
        entry["status"] = STATUS_APPROVED
    atomic_pickle(production, ckpt / PLAYBOOK_PKL)
    atomic_write_text(json.dumps(doc, indent=2, sort_keys=True), ckpt / PLAYBOOK_JSON)
    return doc
