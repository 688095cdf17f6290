"""Phase 5: strategy selection and risk scoring (seed 003, Task C).

Inputs (all under ``checkpoint_dir``): ``brain.pkl`` (Phase 4's BayesianBrain with its trade history),
``pattern_library.pkl`` (Phase 3), and, when present, ``phase4_regret.parquet`` (per-trade regret
markers) and ``phase4_report.json`` (for ``train_until``). Outputs: ``production_playbook.pkl`` (the
seed's ``{template_id: {...}}`` layout) and its JSON twin ``production_playbook.json``, both with
status ``pending_review`` until ``edgefinder markets approve-playbook`` marks them ``approved``.

Per template (money in dollars per contract net of costs; Sharpe per trade, not annualized):

* brain: wins, losses, total, ``prob`` = (wins + 1) / (total + 11), ``conf`` = min(total / 100, 1);
* trades: ``sharpe`` = mean / std (population std, 0 with < 2 trades or zero spread),
  ``max_dd`` (<= 0, cumulative-PnL drawdown from 0), ``avg_win`` (> 0 or 0), ``avg_loss`` (< 0 or 0),
  ``max_consecutive_losses``, ``win_rate`` = wins / total (0 without trades), ``total_pnl``;
* tiers, exactly the seed's thresholds (strict inequalities):

  - TIER 1 (production): prob > 0.55 and conf > 0.30 and sharpe > 0.5 and total > 30
  - TIER 2 (promising):  prob > 0.50 and conf > 0.20 and total > 15
  - TIER 3 (unproven):   total < 15
  - TIER 4 (toxic):      prob < 0.45 and total > 20

  Precedence 1, 2, 3, 4 (only Tier 1 and Tier 2 can both match; 3 and 4 are disjoint from each
  other and from 1–2). A template matching none (e.g. exactly 15 trades, or prob in [0.45, 0.50]
  with more than 15 trades, or 16–20 trades with prob < 0.45) is tier 0, "UNCLASSIFIED": reported,
  never in production.
* ``risk_score`` = 0.3 (1 - win_rate) + 0.3 loss_ratio + 0.2 (max_consecutive_losses / 10)
  + 0.2 dd_ratio, with the seed's divisions guarded: loss_ratio = |avg_loss| / avg_win when
  avg_win > 0, else ``ratio_cap`` if there are losses (0 otherwise); dd_ratio = |max_dd| / total_pnl
  when total_pnl > 0, else ``ratio_cap`` if there was a drawdown (0 otherwise); both ratios capped
  at ``ratio_cap`` (5). Levels: LOW < 0.5 <= MEDIUM < 1.0 <= HIGH.
* beyond the seed: ``p_value`` one-sided t-test of mean trade PnL > 0, ``q_value`` Benjamini-Hochberg
  across all templates with >= 2 trades, ``dsr`` deflated Sharpe ratio (n_trials = those templates,
  Sharpe variance across them). When the history holds out-of-sample trades (``--train-until``),
  p, q and DSR are computed on the **out-of-sample** trades only (in-sample trades fed the parameter
  search, so their significance is inflated); otherwise on all trades. A Tier-1 template enters the
  production playbook only when q <= ``q_max`` (0.10); the report counts those the gate removed.
* regret (Phase 4's BatchRegretAnalyzer): mean exit efficiency and the share of exits closed too
  early / too late, per template.
* ancestry: each template's root context is the most frequent (root timeframe, root type) among
  its trades' parent chains (stored on every trade), "(none)" for entries without ancestors.
"""

from __future__ import annotations

import datetime as _dt
import json
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError
from edgefinder.jsonsafe import jsonable
from edgefinder.markets._io import atomic_pickle, atomic_write_text, read_pickle
from edgefinder.markets.brain import BayesianBrain, trades_frame
from edgefinder.stats.multiple import multiple_test_correction
from edgefinder.stats.performance import (
    deflated_sharpe_ratio,
    max_consecutive_losses,
    max_drawdown,
    mean_pnl_test,
    sharpe,
)

PLAYBOOK_PKL = "production_playbook.pkl"
PLAYBOOK_JSON = "production_playbook.json"
STATUS_PENDING = "pending_review"
STATUS_APPROVED = "approved"
TIER_NAMES = {1: "TIER 1 — PRODUCTION READY", 2: "TIER 2 — PROMISING", 3: "TIER 3 — UNPROVEN",
              4: "TIER 4 — TOXIC", 0: "UNCLASSIFIED"}
NO_ROOT = "(none)"


class SelectionError(EdgefinderError):
    """Phase 5 cannot run (no brain from Phase 4, no library) or a review action is invalid."""


@dataclass(frozen=True)
class SelectionConfig:
    """Phase 5 settings. ``q_max``: BH q a Tier-1 template needs for production (0.10);
    ``ratio_cap``: cap of the risk score's two ratios; ``risk_low``/``risk_high``: level cut-offs."""

    q_max: float = 0.10
    ratio_cap: float = 5.0
    risk_low: float = 0.5
    risk_high: float = 1.0


def classify_tier(prob: float, conf: float, sharpe_ratio: float, total: int) -> int:
    """Seed tier (1–4) with precedence 1, 2, 3, 4; 0 when no tier's conditions hold."""
    if prob > 0.55 and conf > 0.30 and sharpe_ratio > 0.5 and total > 30:
        return 1
    if prob > 0.50 and conf > 0.20 and total > 15:
        return 2
    if total < 15:
        return 3
    if prob < 0.45 and total > 20:
        return 4
    return 0


def risk_score(win_rate: float, avg_win: float, avg_loss: float, max_consec_losses: int,
               max_dd: float, total_pnl: float, ratio_cap: float = 5.0) -> float:
    """The seed's risk score with guarded divisions (see module doc). Dimensionless, >= 0."""
    if avg_win > 0:
        loss_ratio = min(abs(avg_loss) / avg_win, ratio_cap)
    else:
        loss_ratio = ratio_cap if avg_loss < 0 else 0.0
    if total_pnl > 0:
        dd_ratio = min(abs(max_dd) / total_pnl, ratio_cap)
    else:
        dd_ratio = ratio_cap if max_dd < 0 else 0.0
    return (0.3 * (1.0 - win_rate) + 0.3 * loss_ratio + 0.2 * (max_consec_losses / 10.0)
            + 0.2 * dd_ratio)


def risk_level(score: float, config: SelectionConfig = SelectionConfig()) -> str:
    if score < config.risk_low:
        return "LOW"
    return "MEDIUM" if score < config.risk_high else "HIGH"


def _pnl_moments(p: np.ndarray) -> tuple[float, float]:
    """(skew, non-excess kurtosis) of trade PnL; (0, 3) when undefined."""
    if p.size >= 3 and np.ptp(p) > 0:
        from scipy import stats as sps

        return float(sps.skew(p)), float(sps.kurtosis(p, fisher=False))
    return 0.0, 3.0


def template_stats(brain: BayesianBrain, library: dict[int, dict[str, Any]],
                   regret: pd.DataFrame | None = None,
                   config: SelectionConfig = SelectionConfig()) -> pd.DataFrame:
    """One row per library template (plus any template only the brain knows), all Phase 5 figures."""
    trades = trades_frame(brain.trade_history)
    use_oos = bool(len(trades)) and bool(trades["out_of_sample"].any())
    ids = sorted(set(int(t) for t in library) | set(int(t) for t in brain.table))
    by_tid = {int(k): g for k, g in trades.groupby("template_id", sort=False)} if len(trades) else {}
    eff = {}
    if regret is not None and len(regret):
        g = regret.groupby("template_id")
        eff = {int(k): (float(v["exit_efficiency"].mean()),
                        float((v["regret_type"] == "closed_too_early").mean()),
                        float((v["regret_type"] == "closed_too_late").mean())) for k, v in g}
    rows = []
    for tid in ids:
        rec = brain.table.get(tid, {"wins": 0, "losses": 0, "total": 0})
        g = by_tid.get(tid)
        pnls = g["pnl"].to_numpy(np.float64) if g is not None else np.zeros(0)
        total = int(rec["total"])
        prob = brain.get_probability(tid)
        conf = brain.get_confidence(tid)
        if pnls.size > 1:
            sr = sharpe(pnls)
            mdd = max_drawdown(pnls)
            avg_win = float(pnls[pnls > 0].mean()) if (pnls > 0).any() else 0.0
            avg_loss = float(pnls[pnls < 0].mean()) if (pnls < 0).any() else 0.0
        else:  # the seed's "len(pnls) > 1" rule: one trade gives no Sharpe, drawdown or averages
            sr, mdd, avg_win, avg_loss = 0.0, 0.0, 0.0, 0.0
        streak = max_consecutive_losses(pnls) if pnls.size else 0
        wr = rec["wins"] / total if total else 0.0
        tot_pnl = float(pnls.sum())
        risk = risk_score(wr, avg_win, avg_loss, streak, mdd, tot_pnl, config.ratio_cap)
        test = pnls if not use_oos else (
            g.loc[g["out_of_sample"], "pnl"].to_numpy(np.float64) if g is not None else np.zeros(0))
        oos = g.loc[g["out_of_sample"], "pnl"].to_numpy(np.float64) if g is not None else np.zeros(0)
        if g is not None and len(g):
            roots = (g["root_tf"].replace("", NO_ROOT) + "|" + g["root_type"].replace("", NO_ROOT))
            counts = roots.value_counts()
            root = sorted(counts[counts == counts.max()].index)[0]
        else:
            root = f"{NO_ROOT}|{NO_ROOT}"
        root_tf, root_type = root.split("|")
        lib = library.get(tid, {})
        e = eff.get(tid, (float("nan"), float("nan"), float("nan")))
        rows.append({
            "template_id": tid, "wins": int(rec["wins"]), "losses": int(rec["losses"]), "total": total,
            "prob": prob, "conf": conf, "win_rate": wr, "sharpe": sr, "max_dd": mdd,
            "avg_win": avg_win, "avg_loss": avg_loss, "max_consecutive_losses": int(streak),
            "total_pnl": tot_pnl, "mean_pnl": float(pnls.mean()) if pnls.size else 0.0,
            "risk_score": risk, "risk_level": risk_level(risk, config),
            "tier": classify_tier(prob, conf, sr, total),
            "test_trades": int(test.size),
            "p_value": mean_pnl_test(test) if test.size >= 2 else np.nan,
            "test_sharpe": sharpe(test) if test.size >= 2 else np.nan,
            "oos_trades": int(oos.size), "oos_pnl": float(oos.sum()),
            "oos_mean_pnl": float(oos.mean()) if oos.size else np.nan,
            "mean_exit_efficiency": e[0], "share_too_early": e[1], "share_too_late": e[2],
            "root_tf": root_tf, "root_type": root_type,
            "pattern_type": lib.get("pattern_type", ""), "timeframe": lib.get("timeframe", ""),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # BH across every template that could be tested (>= 2 trades); untested templates get NaN q.
    _, q = multiple_test_correction(df["p_value"].to_numpy(np.float64), alpha=config.q_max)
    df["q_value"] = q
    tested = df["p_value"].notna().to_numpy()
    n_trials = int(tested.sum())
    sr_var = float(np.var(df.loc[tested, "test_sharpe"])) if n_trials > 1 else 0.0
    dsr = np.full(len(df), np.nan)
    for i in np.flatnonzero(tested):
        tid = int(df.at[i, "template_id"])
        g = by_tid[tid]
        p = (g.loc[g["out_of_sample"], "pnl"] if use_oos else g["pnl"]).to_numpy(np.float64)
        sk, ku = _pnl_moments(p)
        dsr[i] = deflated_sharpe_ratio(float(df.at[i, "test_sharpe"]), int(p.size), max(n_trials, 1),
                                       sk, ku, sr_var)
    df["dsr"] = dsr
    df.attrs["significance_sample"] = "out-of-sample" if use_oos else "all"
    return df


@dataclass(frozen=True)
class SelectionResult:
    """Phase 5 outputs: the per-template ``stats`` frame, the ``production`` playbook dict, counts."""

    stats: pd.DataFrame
    production: dict[int, dict[str, Any]]
    tier1_removed_by_q: int
    significance_sample: str
    ancestry: pd.DataFrame = field(default_factory=pd.DataFrame)
    paths: tuple[Path, ...] = ()


def ancestry_table(stats: pd.DataFrame, tier: int | None = 1) -> pd.DataFrame:
    """Templates grouped by root context (root_tf, root_type): count, share, mean Sharpe."""
    sub = stats if tier is None else stats[stats["tier"] == tier]
    if sub.empty:
        return pd.DataFrame(columns=["root_tf", "root_type", "templates", "share", "avg_sharpe"])
    g = sub.groupby(["root_tf", "root_type"]).agg(templates=("template_id", "size"),
                                                  avg_sharpe=("sharpe", "mean")).reset_index()
    g["share"] = g["templates"] / g["templates"].sum()
    return g.sort_values(["templates", "avg_sharpe"], ascending=[False, False]).reset_index(drop=True)


def _fmt_money(x: float) -> str:
    return f"-${abs(x):,.0f}" if x < 0 else f"${x:,.0f}"


def _tier_table(rows: pd.DataFrame, title: str, with_sig: bool) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("Template", "Trades", "Win%", "Sharpe", "Tot PnL", "Max DD", "Risk"):
        t.add_column(col, justify="left" if col == "Template" else "right")
    if with_sig:
        for col in ("p", "q", "DSR", "OOS PnL", "Exit eff"):
            t.add_column(col, justify="right")
    for r in rows.itertuples(index=False):
        cells = [f"T-{r.template_id}", str(r.total), f"{r.win_rate:.0%}", f"{r.sharpe:.2f}",
                 _fmt_money(r.total_pnl), _fmt_money(r.max_dd), r.risk_level]
        if with_sig:
            cells += [_g(r.p_value), _g(r.q_value), _f(r.dsr, 2), _fmt_money(r.oos_pnl),
                      _f(r.mean_exit_efficiency, 2)]
        t.add_row(*cells)
    return t


def _f(x: float, nd: int) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _g(x: float) -> str:
    """p and q values: two significant digits (3.2e-05 rather than 0.000)."""
    return "—" if x is None or not np.isfinite(x) else f"{x:.2g}"


def _tf_label(tf: str) -> str:
    return tf.upper() if tf not in (NO_ROOT, "") else "no-ancestor"


def _type_label(t: str) -> str:
    return {"ROCHE_SNAP": "Roche", "STRUCTURAL_DRIVE": "Structural"}.get(t, t)


def print_report(result: SelectionResult, console: Console, config: SelectionConfig, max_rows: int = 25) -> None:
    """The seed's Phase 5 report: tier tables, ancestry analysis, production line."""
    st = result.stats
    console.print("\n[bold]=== Phase 5: Strategy Selection ===[/bold]")
    console.print(f"[dim]{PURPOSE}: {DISCLAIMER}[/dim]")
    if st.empty:
        console.print("No templates.")
        return
    order = st.sort_values(["sharpe", "total"], ascending=[False, False])
    by_trades = st.sort_values(["total", "sharpe"], ascending=[False, False])
    for tier in (1, 2, 3, 4, 0):
        # Tier 3 is "not enough data": list the templates with the most trades first.
        rows = (by_trades if tier == 3 else order)
        rows = rows[rows["tier"] == tier]
        suffix = ", EXCLUDED from production" if tier == 4 else ""
        title = f"{TIER_NAMES[tier]} ({len(rows)} templates{suffix})"
        if rows.empty:
            console.print(title)
            continue
        shown = rows.head(max_rows)
        console.print(_tier_table(shown, title, with_sig=tier in (1, 2)))
        if len(rows) > len(shown):
            console.print(f"  … {len(rows) - len(shown)} more")
    console.print("\nANCESTRY ANALYSIS:")
    anc = result.ancestry
    n1 = int((st["tier"] == 1).sum())
    if n1 and not anc.empty:
        for r in anc.itertuples(index=False):
            console.print(f"  {_tf_label(r.root_tf)} {_type_label(r.root_type)} → lower TF entry: "
                          f"{r.templates}/{n1} Tier 1 templates ({r.share:.0%}), avg Sharpe {r.avg_sharpe:.2f}")
        best = anc.sort_values("avg_sharpe", ascending=False).iloc[0]
        console.print(f"  Best macro context: {_tf_label(best.root_tf)} {_type_label(best.root_type)} "
                      f"(avg Sharpe {best.avg_sharpe:.2f})")
    else:
        allc = ancestry_table(st[st["total"] > 0], tier=None)
        console.print("  No Tier 1 templates; all traded templates by root context:")
        for r in allc.itertuples(index=False):
            console.print(f"  {_tf_label(r.root_tf)} {_type_label(r.root_type)}: {r.templates} templates, "
                          f"avg Sharpe {r.avg_sharpe:.2f}")
    console.print(f"\nSignificance (p, q, DSR) on {result.significance_sample} trades; "
                  f"q-gate (q <= {config.q_max:.2f}) removed {result.tier1_removed_by_q} of {n1} Tier-1 templates.")
    where = result.paths[0] if result.paths else Path("checkpoints") / PLAYBOOK_PKL
    console.print(f"PRODUCTION PLAYBOOK: {len(result.production)} templates saved to "
                  f"{where} (status {STATUS_PENDING}; approve with "
                  f"`edgefinder markets approve-playbook --checkpoint-dir {where.parent}`)")


def load_library(checkpoint_dir: Path) -> dict[int, dict[str, Any]]:
    path = checkpoint_dir / "pattern_library.pkl"
    lib = read_pickle(path, SelectionError, f"pattern library not found: {path} (run Phases 2–3 first)")
    if not isinstance(lib, dict):
        raise SelectionError(f"{path} is not a pattern library dict")
    return {int(k): v for k, v in lib.items() if not str(k).startswith("_")}


def run_strategy_selection(checkpoint_dir: str | Path, config: SelectionConfig | None = None,
                           console: Console | None = None, *, brain: BayesianBrain | None = None,
                           library: dict[int, dict[str, Any]] | None = None,
                           write: bool = True) -> SelectionResult:
    """Phase 5 (Task C): rank templates, score risk, write the production playbook (pending review)."""
    cfg = config or SelectionConfig()
    ckpt = Path(checkpoint_dir)
    if brain is None:
        from edgefinder.markets.brain import BrainFileError

        try:
            brain = BayesianBrain.load(ckpt / "brain.pkl")
        except BrainFileError as exc:
            raise SelectionError(f"{exc} (run the forward pass first: --forward-pass)") from None
    if library is None:
        library = load_library(ckpt)
    regret = None
    rpath = ckpt / "phase4_regret.parquet"
    if rpath.exists():
        regret = pd.read_parquet(rpath)
    st = template_stats(brain, library, regret, cfg)
    sample = st.attrs.get("significance_sample", "all") if not st.empty else "all"
    production: dict[int, dict[str, Any]] = {}
    removed = 0
    if not st.empty:
        tier1 = st[st["tier"] == 1]
        for r in tier1.itertuples(index=False):
            if not (np.isfinite(r.q_value) and r.q_value <= cfg.q_max):
                removed += 1
                continue
            lib = library.get(int(r.template_id), {})
            production[int(r.template_id)] = {
                "centroid": list(map(float, lib.get("centroid", []))),
                "params": dict(lib.get("params", {})),
                "win_rate": float(r.prob),
                "sharpe": float(r.sharpe),
                "risk_score": float(r.risk_score),
                "tier": 1,
                "trades": int(r.total), "empirical_win_rate": float(r.win_rate),
                "total_pnl": float(r.total_pnl), "max_drawdown": float(r.max_dd),
                "p_value": float(r.p_value), "q_value": float(r.q_value), "dsr": jsonable(r.dsr),
                "oos_trades": int(r.oos_trades), "oos_pnl": float(r.oos_pnl),
                "mean_exit_efficiency": jsonable(r.mean_exit_efficiency),
                "root_tf": r.root_tf, "root_type": r.root_type,
                "pattern_type": lib.get("pattern_type", ""), "timeframe": lib.get("timeframe", ""),
                "direction_rule": lib.get("direction_rule", ""),
                "status": STATUS_PENDING,
            }
    result = SelectionResult(st, production, removed, sample,
                             ancestry_table(st) if not st.empty else pd.DataFrame())
    paths: tuple[Path, ...] = ()
    if write:
        paths = write_playbook(ckpt, production, st, result, cfg)
        result = SelectionResult(st, production, removed, sample, result.ancestry, paths)
    if console is not None:
        print_report(result, console, cfg)
    return result


def write_playbook(ckpt: Path, production: dict[int, dict[str, Any]], st: pd.DataFrame,
                   result: SelectionResult, cfg: SelectionConfig) -> tuple[Path, ...]:
    """Write production_playbook.pkl (seed layout) + .json twin + phase5_templates.csv."""
    pkl = atomic_pickle(production, ckpt / PLAYBOOK_PKL)
    tiers = {TIER_NAMES[k]: int((st["tier"] == k).sum()) for k in TIER_NAMES} if not st.empty else {}
    doc = {
        "purpose": PURPOSE, "disclaimer": DISCLAIMER,
        "status": STATUS_PENDING, "reviewer": None, "reviewed_at": None,
        "q_max": cfg.q_max, "significance_sample": result.significance_sample,
        "tier_counts": tiers, "tier1_removed_by_q": result.tier1_removed_by_q,
        "templates": {str(k): jsonable(v) for k, v in production.items()},
    }
    js = atomic_write_text(json.dumps(doc, indent=2, sort_keys=True), ckpt / PLAYBOOK_JSON)
    csv = ckpt / "phase5_templates.csv"
    st.to_csv(csv, index=False)
    return (pkl, js, csv)


def approve_playbook(checkpoint_dir: str | Path, reviewer: str | None = None) -> dict[str, Any]:
    """Mark the production playbook ``approved`` (the human-in-the-loop step); returns the JSON doc.

    Records the reviewer and the review time (wall clock: this is an audit record, not market data).
    """
    ckpt = Path(checkpoint_dir)
    pkl, js = ckpt / PLAYBOOK_PKL, ckpt / PLAYBOOK_JSON
    if not pkl.exists() or not js.exists():
        raise SelectionError(f"no production playbook in {ckpt} (run --strategy-report first)")
    try:
        with pkl.open("rb") as fh:
            production = pickle.load(fh)
        doc = json.loads(js.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001
        raise SelectionError(f"cannot read the production playbook in {ckpt}: {exc}") from None
    if doc.get("status") == STATUS_APPROVED:
        raise SelectionError(f"production playbook in {ckpt} is already approved (by {doc.get('reviewer')})")
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    name = reviewer or "unknown"
    for entry in production.values():
        entry["status"] = STATUS_APPROVED
    doc.update(status=STATUS_APPROVED, reviewer=name, reviewed_at=when)
    for entry in doc.get("templates", {}).values():
        entry["status"] = STATUS_APPROVED
    atomic_pickle(production, pkl)
    atomic_write_text(json.dumps(doc, indent=2, sort_keys=True), js)
    return doc


def load_production_playbook(checkpoint_dir: str | Path) -> tuple[dict[int, dict[str, Any]], str]:
    """(playbook dict, status) from ``checkpoint_dir``."""
    ckpt = Path(checkpoint_dir)
    with (ckpt / PLAYBOOK_PKL).open("rb") as fh:
        production = pickle.load(fh)
    doc = json.loads((ckpt / PLAYBOOK_JSON).read_text(encoding="utf-8"))
    return production, str(doc.get("status"))


def iter_tier(stats: pd.DataFrame, tier: int) -> Iterable[int]:
    return stats.loc[stats["tier"] == tier, "template_id"].astype(int).tolist()
