"""Paper trading: the frozen production playbook on sessions nothing in the pipeline has seen.

Phase 5 selects the production playbook on the forward pass's out-of-sample trades, so those trades
cannot also say how the selection does: a figure that chose something cannot judge it.
:func:`run_paper_trade` replays later sessions with the production playbook only, **frozen** — no
new templates, no parameter search, no brain updates — and with the forward pass's scan (hierarchy,
cascade mode, physics thresholds), gates (as ``phase4_report.json`` records them) and exit simulator.
A candidate trades only when its nearest library template is in production *for the candidate's
family*; one position at a time among those.

Why a person approves first and the figures come from unused sessions: docs/decisions.md §D28. It
refuses a range that overlaps the sessions Phases 2–5 used (every session up to the forward pass's
last one, from ``state.json``) and a playbook still ``pending_review`` unless ``allow_pending``. It
writes ``paper_trade_report.json`` (the original figures, power, per-session lines, what was traded)
and ``paper_trade_trades.parquet`` into the checkpoint directory.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.dates import parse_date
from edgefinder.errors import EdgefinderError
from edgefinder.jsonsafe import jsonable
from edgefinder.markets import atlas
from edgefinder.markets._io import atomic_write_text, write_parquet
from edgefinder.markets.brain import TRADE_COLUMNS, BayesianBrain, BrainFileError
from edgefinder.markets.cascade import ROCHE_SNAP, STRUCTURAL_DRIVE, FractalCascadeScanner
from edgefinder.markets.checkpoints import (
    BRAIN,
    PAPER_REPORT,
    PAPER_TRADES,
    REPORT,
    check_dataset,
    check_instrument,
    forward_record,
    training_record,
)
from edgefinder.markets.engine import GATE_COUNTS, ReplayEngine
from edgefinder.markets.forward import load_playbook, resolve_hierarchy
from edgefinder.markets.instruments import get_instrument
from edgefinder.markets.metalabel import META_TAG, MetaModel, load_meta_model, meta_family_key
from edgefinder.markets.replay import Gates, Matched
from edgefinder.markets.selection import STATUS_APPROVED, SelectionError, load_production_playbook
from edgefinder.markets.summary import sample_block
from edgefinder.markets.views import print_paper_trade

__all__ = ["PaperTradeError", "PaperTradeResult", "production_candidates", "run_paper_trade"]


class PaperTradeError(EdgefinderError):
    """Paper trading cannot run (range overlaps the pipeline's sessions, playbook not approved, …)."""


def production_candidates(
    matched: Matched, production: dict[int, dict[str, Any]], meta: MetaModel | None
) -> np.ndarray:
    """Whether each candidate's nearest template is in production for one of the candidate's
    families: its own family, or its pattern type's meta-label family when the meta model's
    probability for its context passes the threshold (vectorized over candidates)."""
    allowed = np.zeros(len(matched), bool)
    by_family: dict[str, list[int]] = {}
    for t, e in production.items():
        for f in e.get("families", {}):
            by_family.setdefault(str(f), []).append(int(t))
    gate = None
    for fam, tids in sorted(by_family.items()):
        member = np.isin(matched.template_id, tids)
        if fam.endswith(META_TAG):
            if meta is None or matched.states is None:
                continue
            if gate is None:
                gate = meta.gate(matched.columns())
            keys = np.where(
                matched.is_roche,
                meta_family_key(ROCHE_SNAP, matched.timeframe),
                meta_family_key(STRUCTURAL_DRIVE, matched.timeframe),
            )
            allowed |= member & (keys == fam) & gate
        else:
            allowed |= member & (matched.family == fam)
    return allowed


@dataclass(frozen=True)
class PaperTradeResult:
    """The report dict (also ``paper_trade_report.json``) and the trades frame."""

    report: dict
    trades: pd.DataFrame


def _date(value: Any, flag: str) -> _dt.date:
    return parse_date(value, flag)


def run_paper_trade(
    checkpoint_dir: str | Path,
    data_dir: str | Path,
    date_from: Any,
    date_to: Any = None,
    *,
    allow_pending: bool = False,
    console: Console | None = None,
    instrument: str | None = None,
) -> PaperTradeResult:
    """Replay the CME sessions ending ``date_from``..``date_to`` (inclusive; default: the last session in
    the ATLAS) with the frozen production playbook of ``checkpoint_dir``; see the module doc.

    ``instrument``: the symbol to price trades with; it must be the one Phase 3 optimised the
    playbook for (default: that one). ``data_dir`` must hold the data the checkpoints were built from.
    """
    ckpt, data = Path(checkpoint_dir), Path(data_dir)
    if not data.is_dir():
        raise PaperTradeError(f"data directory not found: {data}")
    d0 = _date(date_from, "--from")
    d1 = None if date_to is None else _date(date_to, "--to")
    if d1 is not None and d1 < d0:
        raise PaperTradeError(f"--to {d1} is before --from {d0}")
    try:
        production, status = load_production_playbook(ckpt)
    except SelectionError as exc:
        raise PaperTradeError(str(exc)) from None
    if status != STATUS_APPROVED and not allow_pending:
        raise PaperTradeError(
            f"the production playbook in {ckpt} is {status}: a person approves it first "
            f"(`edgefinder markets approve-playbook --checkpoint-dir {ckpt}`), or pass "
            "--allow-pending to paper-trade it anyway"
        )
    fwd = forward_record(ckpt)
    rec = training_record(ckpt)
    if fwd is None or fwd.last_session is None or rec is None:
        raise PaperTradeError(
            f"{ckpt} has no forward-pass record: run `markets run --forward-pass "
            "--strategy-report` first"
        )
    check_dataset(ckpt, data, PaperTradeError)
    symbol = check_instrument(ckpt, instrument, PaperTradeError)
    if d0 <= _dt.date.fromisoformat(fwd.last_session):
        raise PaperTradeError(
            f"--from {d0} overlaps the sessions Phases 2–5 used (up to {fwd.last_session}): paper trading judges "
            "the playbook on sessions nothing chose it on; start after that (hold sessions back with "
            "`markets run --forward-until DATE`)"
        )
    try:
        phase4 = json.loads((ckpt / REPORT).read_text())
        cfg = phase4["config"]
        gates = Gates(
            float(cfg["match_distance"]),
            float(cfg["min_prob"]),
            float(cfg["min_conf"]),
            int(cfg.get("min_depth", 0)),
        )
        brain = BayesianBrain.load(ckpt / BRAIN)
    except (
        FileNotFoundError,
        KeyError,
        TypeError,
        ValueError,
        json.JSONDecodeError,
        BrainFileError,
    ) as exc:
        raise PaperTradeError(
            f"cannot read the forward pass's report or brain in {ckpt}: {exc}"
        ) from None

    playbook = load_playbook(ckpt)
    hierarchy = resolve_hierarchy(data, ckpt)
    scanner = FractalCascadeScanner(
        hierarchy, cfg.get("entry_timeframe", "15s"), rec.physics, rec.cascade
    )
    inst = get_instrument(symbol or phase4.get("instrument", {}).get("symbol", "MNQ"))
    meta = load_meta_model(ckpt, PaperTradeError)
    engine = ReplayEngine(playbook, scanner, inst, gates).prepare(
        data,
        end=None if d1 is None else atlas.session_bounds(d1)[1],
        allowed=lambda m: production_candidates(m, production, meta),
    )
    labels = engine.s_label.astype("datetime64[D]").astype(object)
    chosen = [k for k, d in enumerate(labels) if d >= d0 and (d1 is None or d <= d1)]
    if not chosen:
        raise PaperTradeError(f"no sessions from {d0}{'' if d1 is None else f' to {d1}'} in {data}")
    engine.sync(brain)  # frozen: the brain as the forward pass left it; learn=False below
    days: list[dict[str, Any]]  # one session's figures each
    done, days = [], []
    for k in chosen:
        res = engine.session(k, learn=False)
        done.append((res, True, str(engine.s_label[k])))
        pnl = np.asarray(res.trades["pnl"], np.float64)
        days.append(
            {
                "session": str(engine.s_label[k]),
                "trades": int(pnl.size),
                "wins": int((pnl > 0).sum()),
                "pnl": float(pnl.sum()),
            }
        )
    paper = engine.finish(done)
    trades = paper.trades()
    block = sample_block(trades, len(days), [d["pnl"] for d in days], len(production))
    report = {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "from": str(d0),
        "to": str(labels[chosen[-1]]),
        "playbook_status": status,
        "production_templates": sorted(int(t) for t in production),
        "sessions": len(days),
        **{
            k: block[k]
            for k in (
                "total_trades",
                "total_pnl",
                "mean_pnl_per_trade",
                "p_value_mean_pnl_gt_0",
                "win_rate",
                "max_drawdown",
                "sharpe_per_trade",
                "sharpe_daily_annualized",
                "wins",
                "losses",
                "templates_fired",
            )
        },
        "power": block["power"],
        "gates": {
            **dataclasses.asdict(gates),
            **{k: engine.gate_counts[k] for k in GATE_COUNTS},
            "candidates_in_production": int(engine.eligible.size),
        },
        "timeframes": scanner.timeframes,
        "cascade": rec.cascade,
        "entry_timeframe": scanner.entry_timeframe,
        "pipeline_sessions_until": fwd.last_session,
        "instrument": dataclasses.asdict(inst),
        "units": {"pnl": "dollars per contract, net of commission and slippage"},
        "per_session": days,
    }
    atomic_write_text(json.dumps(jsonable(report), indent=2, sort_keys=True), ckpt / PAPER_REPORT)
    keep = [c for c in TRADE_COLUMNS if c in trades.columns]
    write_parquet(
        trades[keep + [c for c in trades.columns if c.startswith("ctx_")]], ckpt / PAPER_TRADES
    )
    if console is not None:
        print_paper_trade(
            console, report, block, production, status, ckpt / PAPER_REPORT, inst.describe()
        )
    return PaperTradeResult(report=report, trades=trades)
