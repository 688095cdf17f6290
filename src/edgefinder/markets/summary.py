"""The result block of a replay (forward pass or paper trade): the original figures plus power.

:func:`sample_block` computes, for one sample of sessions, what the original final block prints (days,
trades, win rate, total PnL, Sharpe, max drawdown, templates fired, brain coverage) and beyond it the
mean PnL per trade with its one-sided p-value and a **power statement**: the smallest mean PnL per
trade the test detects at 80 % power for the trades and PnL spread observed, and whether the
sample can support a conclusion at all. :func:`print_block` prints it. Money in dollars per
contract net of costs; Sharpe per trade unless labelled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from edgefinder.stats.performance import max_drawdown, mean_pnl_test, sharpe
from edgefinder.stats.power import MIN_CONCLUSIVE_N, power_of_sample

__all__ = [
    "NO_ROOT",
    "STATUS_APPROVED",
    "STATUS_PENDING",
    "TIER_NAMES",
    "ancestry_table",
    "fmt_epoch",
    "money",
    "power_text",
    "sample_block",
]

STATUS_PENDING = "pending_review"
STATUS_APPROVED = "approved"
TIER_NAMES = {
    1: "TIER 1 — PRODUCTION READY",
    2: "TIER 2 — PROMISING",
    3: "TIER 3 — UNPROVEN",
    4: "TIER 4 — TOXIC",
    0: "UNCLASSIFIED",
}
NO_ROOT = "(none)"


def money(x: float, digits: int = 2) -> str:
    """``-$1,234.50`` / ``$1,234.50``: the sign before the dollar sign."""
    return f"{'-' if x < 0 else ''}${abs(x):,.{digits}f}"


def sample_block(
    trades: pd.DataFrame, days: int, daily_pnl: Sequence[float] | np.ndarray, n_templates: int
) -> dict:
    """The block's figures for one sample (JSON-ready); ``trades`` has ``pnl`` and ``template_id``."""
    pnl = trades["pnl"].to_numpy(np.float64) if len(trades) else np.zeros(0)
    counts = trades["template_id"].value_counts() if len(trades) else pd.Series(dtype=np.int64)
    wins = int((pnl > 0).sum())
    daily = np.asarray(daily_pnl, dtype=np.float64)
    dsd = float(np.std(daily, ddof=1)) if daily.size > 1 else 0.0
    pw = power_of_sample(pnl)
    return {
        "days": int(days),
        "total_trades": int(pnl.size),
        "wins": wins,
        "losses": int(pnl.size - wins),
        "win_rate": float(wins / pnl.size) if pnl.size else 0.0,
        "total_pnl": float(pnl.sum()),
        "mean_pnl_per_trade": float(pnl.mean()) if pnl.size else 0.0,
        "p_value_mean_pnl_gt_0": float(mean_pnl_test(pnl)) if pnl.size else 1.0,
        "sharpe_per_trade": float(sharpe(pnl)) if pnl.size else 0.0,
        "sharpe_daily_annualized": float(daily.mean() / dsd * np.sqrt(252.0)) if dsd > 0 else 0.0,
        "max_drawdown": float(max_drawdown(pnl)) if pnl.size else 0.0,
        "templates_fired": int(counts.size),
        "templates_total": int(n_templates),
        "brain_coverage_over_30": int((counts > 30).sum()),
        "power": pw.as_dict(),
    }


def power_text(block: dict) -> str:
    """The power statement of a block, in words."""
    pw = block.get("power") or {}
    n = int(block.get("total_trades", 0))
    if n < MIN_CONCLUSIVE_N:
        return (
            f"{n} trade(s): too few to support any conclusion — an edge could be large and still "
            f"unseen (at least {MIN_CONCLUSIVE_N} are needed)"
        )
    mde = float(pw.get("minimum_detectable", float("nan")))
    return (
        f"{n:,} trades with a PnL spread of {money(float(pw.get('sd', float('nan'))))}: the test detects a "
        f"mean of {money(mde)}/trade or more with {pw.get('power', 0.8):.0%} power (one-sided "
        f"α = {pw.get('alpha', 0.05):g}); a smaller edge would go unseen"
    )


def fmt_epoch(t: int) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM UTC``."""
    import datetime as _dt

    return _dt.datetime.fromtimestamp(int(t), _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def ancestry_table(stats: pd.DataFrame, tier: int | None = 1) -> pd.DataFrame:
    """Templates grouped by root context (root_tf, root_type): count, share, mean Sharpe."""
    sub = stats if tier is None else stats[stats["tier"] == tier]
    if sub.empty:
        return pd.DataFrame(columns=["root_tf", "root_type", "templates", "share", "avg_sharpe"])
    g = (
        sub.groupby(["root_tf", "root_type"])
        .agg(templates=("template_id", "size"), avg_sharpe=("sharpe", "mean"))
        .reset_index()
    )
    g["share"] = g["templates"] / g["templates"].sum()
    return g.sort_values(["templates", "avg_sharpe"], ascending=[False, False]).reset_index(
        drop=True
    )
