"""The futures section's data: what Phases 4–5 and the paper trade wrote into a checkpoint directory.

:func:`futures_data` reads only the phases' own files (names in :mod:`edgefinder.markets.checkpoints`)
and returns a JSON-ready dict (served as-is by ``GET /api/v1/report/futures``):

* ``samples`` — the result blocks (in-sample, out-of-sample, paper trade; trades, PnL, mean per trade,
  p, win rate, power and the power statement in words);
* ``equity`` — cumulative PnL per session of each sample, each starting at zero;
* ``tiers`` — the original tier counts and the leading templates' rows of ``phase5_templates.csv``;
* ``families`` — the families tested in Phase 5 (mean PnL with 95 % CI, p, q, DSR, detectable mean);
* ``ancestry`` — the ancestry comparisons (difference of mean PnL per trade, 95 % CI, p);
* ``regret`` — the distribution of money left on the table and given back per trade (histograms on
  shared bins), and the regret types;
* ``top_templates`` — for the production templates (or, without any, the best out-of-sample ones):
  exit parameters and the distribution of their trades' PnL (quartiles, fences, mean);
* ``trades`` — the context at entry of the out-of-sample and paper trades (:func:`trade_context`):
  per trade its sample, session, entry time, template, side, family, PnL and, per coarser timeframe,
  its state (with / against / calm), z and bars since its last pattern, plus the volatility regime;
  the last :data:`TRADE_ROWS` trades of each sample (``total`` counts them all; every trade is served
  by ``GET /api/v1/report/futures/trades`` as JSON pages or CSV);
* ``production`` and ``config`` — the playbook's status and rule, and the settings that produced it.

Money is dollars per contract net of costs; dates are the CME session dates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgefinder.errors import EdgefinderError, first_line
from edgefinder.jsonsafe import jsonable
from edgefinder.markets import atlas
from edgefinder.markets.checkpoints import (
    LIBRARY_JSON,
    PAPER_REPORT,
    PAPER_TRADES,
    PLAYBOOK_JSON,
    REGRET,
    REPORT,
    SELECTION_ANCESTRY_CSV,
    SELECTION_CSV,
    SELECTION_FAMILIES_CSV,
    TRADES,
    read_state,
)
from edgefinder.markets.context import STRETCH_NAMES, context_label, context_timeframes
from edgefinder.markets.selection import TIER_NAMES
from edgefinder.markets.summary import power_text

__all__ = ["TOP_TEMPLATES", "TRADE_ROWS", "ReportError", "futures_data", "trade_context"]

#: Templates whose exit parameters and PnL distribution the report shows.
TOP_TEMPLATES = 5
#: Rows of the template table.
TABLE_TEMPLATES = 12
#: Trades of each sample whose context the page lists (the latest ones).
TRADE_ROWS = 100
#: Bins of the regret histograms.
REGRET_BINS = 40

_BLOCK_KEYS = (
    "days",
    "total_trades",
    "wins",
    "losses",
    "win_rate",
    "total_pnl",
    "mean_pnl_per_trade",
    "p_value_mean_pnl_gt_0",
    "sharpe_per_trade",
    "sharpe_daily_annualized",
    "max_drawdown",
    "templates_fired",
    "power",
)


class ReportError(EdgefinderError):
    """A checkpoint file the report reads is unreadable (named in the message)."""


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ReportError(f"cannot read {path}: not a JSON object")
    return doc


def _table(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise ReportError(f"cannot read {path}: {first_line(exc)}") from None


def _block(b: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not b:
        return None
    out = {k: b.get(k) for k in _BLOCK_KEYS if k in b}
    out["days"] = b.get("days", b.get("sessions"))
    return {"sample": name, **out, "power_text": power_text(b)}


def _curve(name: str, days: list[dict[str, Any]]) -> dict[str, Any]:
    pnl = np.array([float(d.get("pnl", 0.0)) for d in days], dtype=np.float64)
    return {
        "sample": name,
        "sessions": [str(d["session"]) for d in days],
        "pnl": pnl.tolist(),
        "cumulative": np.cumsum(pnl).tolist(),
        "trades": [int(d.get("trades", 0)) for d in days],
    }


def _session_date(t: Any) -> str | None:
    """The CME session a bound in epoch seconds opens (the date that session ends)."""
    return None if t is None else str(atlas.session_ids(np.array([int(t)]))[0])


def _box(pnl: np.ndarray) -> dict[str, Any]:
    """Quartiles, Tukey fences (1.5 IQR, clipped to the data) and mean of ``pnl``."""
    q1, med, q3 = (float(v) for v in np.quantile(pnl, [0.25, 0.5, 0.75]))
    iqr = q3 - q1
    lo = float(pnl[pnl >= q1 - 1.5 * iqr].min())
    hi = float(pnl[pnl <= q3 + 1.5 * iqr].max())
    return {
        "n": int(pnl.size),
        "q1": q1,
        "median": med,
        "q3": q3,
        "lowerfence": lo,
        "upperfence": hi,
        "mean": float(pnl.mean()),
        "min": float(pnl.min()),
        "max": float(pnl.max()),
    }


def _regret(regret: pd.DataFrame | None, summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if regret is None or regret.empty:
        return None
    left = regret["left_on_table"].to_numpy(np.float64)
    gave = regret["gave_back"].to_numpy(np.float64)
    both = np.concatenate([left, gave])
    both = both[np.isfinite(both)]
    edges = np.histogram_bin_edges(both, bins=REGRET_BINS) if both.size else np.array([0.0, 1.0])
    types = regret["regret_type"].astype(str).value_counts()
    return {
        "bin_edges": edges.tolist(),
        "left_on_table": np.histogram(left[np.isfinite(left)], bins=edges)[0].tolist(),
        "gave_back": np.histogram(gave[np.isfinite(gave)], bins=edges)[0].tolist(),
        "types": {
            k: int(types.get(k, 0)) for k in ("optimal", "closed_too_early", "closed_too_late")
        },
        "trades": int(len(regret)),
        "total_left_on_table": float(np.nansum(left)),
        "total_gave_back": float(np.nansum(gave)),
        "mean_exit_efficiency": float(regret["exit_efficiency"].mean()),
        "summary": summary,
    }


def _tier_label(t: Any) -> str:
    """``2 — promising`` for TIER_NAMES' ``TIER 2 — PROMISING``; ``unclassified`` for tier 0."""
    if pd.isna(t):
        return ""
    name = TIER_NAMES.get(int(t), str(t))
    return name.removeprefix("TIER ").lower() if int(t) else name.lower()


def _tiers(
    templates: pd.DataFrame | None, playbook: dict[str, Any] | None, production: set[int]
) -> dict[str, Any]:
    if templates is None or templates.empty:
        return {"counts": (playbook or {}).get("tier_counts", {}), "rows": [], "templates": 0}
    counts = {TIER_NAMES[k]: int((templates["tier"] == k).sum()) for k in TIER_NAMES}
    traded = templates[templates["total"] > 0].copy()
    traded["in_production"] = traded["template_id"].astype(int).isin(production)
    top = traded.sort_values(
        ["in_production", "oos_pnl", "total_pnl"], ascending=[False, False, False]
    )
    cols = [
        "template_id",
        "tier",
        "pattern_type",
        "timeframe",
        "total",
        "win_rate",
        "sharpe",
        "total_pnl",
        "max_dd",
        "risk_level",
        "oos_trades",
        "oos_pnl",
        "p_value",
        "q_value",
        "dsr",
        "in_production",
    ]
    rows = top.head(TABLE_TEMPLATES).reindex(columns=cols).to_dict(orient="records")
    for r in rows:
        r["tier_name"] = _tier_label(r.get("tier"))
    return {
        "counts": counts,
        "rows": rows,
        "templates": int(len(templates)),
        "traded": int(len(traded)),
    }


def _top_templates(
    templates: pd.DataFrame | None,
    playbook: dict[str, Any] | None,
    trades: pd.DataFrame | None,
    paper: pd.DataFrame | None,
) -> list[dict[str, Any]]:
    entries = {int(k): v for k, v in ((playbook or {}).get("templates") or {}).items()}
    if templates is None or templates.empty:
        return []
    st = templates.set_index(templates["template_id"].astype(int))
    if entries:
        ids = sorted(entries, key=lambda t: -float(st["oos_pnl"].loc[t]) if t in st.index else 0.0)
    else:
        cand = templates[templates["oos_trades"] > 0].sort_values("oos_pnl", ascending=False)
        ids = [int(t) for t in cand["template_id"]]
    oos = trades[trades["out_of_sample"]] if trades is not None and len(trades) else None
    out = []
    for tid in ids[:TOP_TEMPLATES]:
        row = st.loc[tid] if tid in st.index else None
        entry = entries.get(tid, {})
        rec: dict[str, Any] = {
            "template_id": tid,
            "in_production": tid in entries,
            "params": entry.get("params", {}),
            "pattern_type": entry.get("pattern_type")
            or (row["pattern_type"] if row is not None else ""),
            "timeframe": entry.get("timeframe") or (row["timeframe"] if row is not None else ""),
            "direction_rule": entry.get("direction_rule", ""),
            "tier_name": _tier_label(row["tier"]) if row is not None else "",
            "families": sorted((entry.get("families") or {}).keys()),
            "oos_trades": int(row["oos_trades"]) if row is not None else 0,
            "oos_pnl": float(row["oos_pnl"]) if row is not None else 0.0,
        }
        for name, frame in (("out_of_sample", oos), ("paper_trade", paper)):
            p = (
                frame.loc[frame["template_id"] == tid, "pnl"].to_numpy(np.float64)
                if frame is not None
                else np.zeros(0)
            )
            rec[name] = _box(p) if p.size else None
        out.append(rec)
    return out


def _fill_library_params(checkpoint_dir: Path, top: list[dict[str, Any]]) -> None:
    """Exit parameters of the templates outside the production playbook, from ``pattern_library.json``."""
    missing = [t for t in top if not t["params"]]
    if missing:
        lib = (_json(checkpoint_dir / LIBRARY_JSON) or {}).get("library") or {}
        for t in missing:
            t["params"] = dict((lib.get(str(t["template_id"])) or {}).get("params") or {})


def _trade_frames(ckpt: Path) -> list[tuple[str, pd.DataFrame]]:
    """(sample, trades) of the forward pass's out-of-sample trades and the paper trade's, as written."""
    out = []
    trades = _table(ckpt / TRADES)
    if trades is not None and len(trades) and "out_of_sample" in trades:
        out.append(("out-of-sample", trades[trades["out_of_sample"].astype(bool)]))
    if (ckpt / PAPER_REPORT).is_file():
        paper = _table(ckpt / PAPER_TRADES)
        if paper is not None:
            out.append(("paper trade", paper))
    return out


def trade_context(checkpoint_dir: str | Path) -> tuple[list[str], pd.DataFrame]:
    """The context at entry of every out-of-sample and paper trade in ``checkpoint_dir``, one row per
    trade in trade order: ``sample``, ``session``, ``entry_time`` (ISO UTC), ``template_id``,
    ``side`` (long/short), ``family``, ``pnl`` ($ per contract, net), per coarser timeframe ``tf``
    ``{tf}_state`` (with/against/calm), ``{tf}_z`` and ``{tf}_bars_since_pattern`` (of its bars; NaN
    before its first), ``vol_regime`` and ``context`` (the label as text). Returns (the coarser
    timeframes, coarsest first; the rows)."""
    frames = _trade_frames(Path(checkpoint_dir))
    tfs: list[str] = []
    for _, f in frames:
        tfs = tfs or context_timeframes(f)[::-1]
    parts = []
    for sample, f in frames:
        if f.empty:
            continue
        side = f["side"] if "side" in f else np.where(f["direction"] == "LONG", 1, -1)
        rows = pd.DataFrame(
            {
                "sample": sample,
                "session": f["session"].astype(str).to_numpy(),
                "entry_time": pd.to_datetime(
                    f["entry_time"].to_numpy(np.float64), unit="s", utc=True
                )
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_numpy(),
                "template_id": f["template_id"].astype(np.int64).to_numpy(),
                "side": np.where(np.asarray(side) > 0, "long", "short"),
                "family": f["family"].astype(str).to_numpy(),
                "pnl": f["pnl"].to_numpy(np.float64),
            }
        )

        def col(name: str, f: pd.DataFrame = f) -> np.ndarray:
            return f[name].to_numpy(np.float64) if name in f else np.full(len(f), np.nan)

        for tf in tfs:
            stretch = np.nan_to_num(col(f"ctx_{tf}_stretch")).astype(np.int64)
            rows[f"{tf}_state"] = [STRETCH_NAMES[int(v)] for v in stretch]
            rows[f"{tf}_z"] = col(f"ctx_{tf}_z")
            rows[f"{tf}_bars_since_pattern"] = col(f"ctx_{tf}_age")
        rows["vol_regime"] = col("ctx_vol_regime")
        recs: list[dict[str, Any]] = f.to_dict(orient="records")  # type: ignore[assignment]
        rows["context"] = [context_label(r, tfs) for r in recs]
        parts.append(rows.reset_index(drop=True))
    return tfs, (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())


def _trades_section(ckpt: Path) -> dict[str, Any] | None:
    tfs, rows = trade_context(ckpt)
    if rows.empty:
        return None
    shown = rows.groupby("sample", sort=False).tail(TRADE_ROWS)
    return {
        "timeframes": tfs,
        "total": {str(k): int(v) for k, v in rows["sample"].value_counts(sort=False).items()},
        "shown": int(len(shown)),
        "rows": shown.to_dict(orient="records"),
    }


def _config(
    forward: dict[str, Any],
    playbook: dict[str, Any] | None,
    state: dict[str, Any],
    paper: dict[str, Any] | None,
) -> dict[str, Any]:
    phases = state.get("phases", {})
    disc, clus, play = (phases.get(k, {}) or {} for k in ("discovery", "clustering", "playbook"))
    inst = forward.get("instrument") or {}
    return {
        "timeframes": forward.get("timeframes"),
        "entry_timeframe": forward.get("entry_timeframe"),
        "cascade": forward.get("cascade"),
        "physics": forward.get("physics"),
        "gates": forward.get("config"),
        "instrument": inst.get("symbol") or play.get("instrument"),
        "tick_value": inst.get("tick_value"),
        "train_until": _session_date(forward.get("train_until")),
        "forward_until": _session_date(forward.get("forward_until")),
        "sessions_replayed": forward.get("sessions_processed"),
        "complete": forward.get("complete"),
        "patterns": disc.get("patterns"),
        "templates": clus.get("templates"),
        "library_templates": play.get("library_templates"),
        "selection_rule": (playbook or {}).get("rule"),
        "paper_trade": None
        if paper is None
        else {
            "from": paper.get("from"),
            "to": paper.get("to"),
            "playbook_status": paper.get("playbook_status"),
        },
    }


def futures_data(checkpoint_dir: str | Path) -> dict[str, Any]:
    """The futures section of the report from ``checkpoint_dir`` (see the module doc); ``available`` is
    False, with a message, when no forward pass wrote its report there."""
    ckpt = Path(checkpoint_dir)
    forward = _json(ckpt / REPORT)
    if forward is None:
        return {
            "available": False,
            "checkpoint_dir": str(ckpt),
            "message": f"no forward-pass report in {ckpt}: run `edgefinder markets run --forward-pass "
            "--strategy-report` (or `edgefinder demo`)",
        }
    playbook = _json(ckpt / PLAYBOOK_JSON)
    paper = _json(ckpt / PAPER_REPORT)
    templates = _table(ckpt / SELECTION_CSV)
    families = _table(ckpt / SELECTION_FAMILIES_CSV)
    ancestry = _table(ckpt / SELECTION_ANCESTRY_CSV)
    trades = _table(ckpt / TRADES)
    paper_trades = _table(ckpt / PAPER_TRADES) if paper is not None else None
    production = {int(t) for t in ((playbook or {}).get("templates") or {})}

    split = forward.get("train_until") is not None
    samples = (
        [
            _block(forward.get("in_sample"), "in-sample"),
            _block(forward.get("out_of_sample"), "out-of-sample"),
        ]
        if split
        else [_block(forward.get("all"), "all sessions")]
    )
    if paper is not None:
        samples.append(_block(paper, "paper trade"))
    days = forward.get("sessions") or []
    equity = (
        [
            _curve("in-sample", [d for d in days if not d.get("out_of_sample")]),
            _curve("out-of-sample", [d for d in days if d.get("out_of_sample")]),
        ]
        if split
        else [_curve("all sessions", days)]
    )
    if paper is not None:
        equity.append(_curve("paper trade", paper.get("per_session") or []))
    top = _top_templates(templates, playbook, trades, paper_trades)
    _fill_library_params(ckpt, top)
    fam = None
    if families is not None and not families.empty:
        fam = (
            families[families["tested"].astype(bool)]
            .sort_values(["q_value", "p_value"])
            .to_dict(orient="records")
        )
    return jsonable(
        {
            "available": True,
            "message": None,
            "checkpoint_dir": str(ckpt),
            "samples": [s for s in samples if s is not None],
            "equity": [c for c in equity if c["sessions"]],
            "tiers": _tiers(templates, playbook, production),
            "families": fam,
            "families_traded": None if families is None else int(len(families)),
            "ancestry": None if ancestry is None else ancestry.to_dict(orient="records"),
            "regret": _regret(_table(ckpt / REGRET), forward.get("regret")),
            "top_templates": top,
            "trades": _trades_section(ckpt),
            "production": None
            if playbook is None
            else {
                "status": playbook.get("status"),
                "reviewer": playbook.get("reviewer"),
                "reviewed_at": playbook.get("reviewed_at"),
                "templates": len(production),
                "families_tested": playbook.get("families_tested"),
                "families_qualified": playbook.get("families_qualified"),
                "significance_sample": playbook.get("significance_sample"),
                "test_sample": _block(
                    playbook.get("test_sample"),
                    playbook.get("significance_sample") or "test sample",
                ),
            },
            "config": _config(forward, playbook, read_state(ckpt), paper),
        }
    )
