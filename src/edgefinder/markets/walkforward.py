"""The walk-forward study: Phases 2–5 and the paper trade per instrument and fold, on Dask.

For every instrument (``--data SYMBOL=PATH``) and every fold (:mod:`edgefinder.markets.folds`)
one **learn task** runs Phases 2–3 on the fold's learning sessions and the forward pass (Phase 4)
up to the end of its test block; one **select task** per fold runs Phase 5 over the test blocks
of *every* instrument at once (BH q-values and deflated Sharpe count every instrument x family
tested) and writes each instrument's production playbook; one **paper task** per instrument and
fold replays the paper block with that frozen playbook. The tasks are Dask tasks
(:mod:`edgefinder.markets.cluster`), or plain calls in this process for ``serial``; each is a pure
function of the study's inputs and seeds, so the engine does not change a single figure.

Everything lands in the study directory ``DIR``: ``tasks/SYMBOL/foldK/`` holds a task's
checkpoints and its result (``learn.json``, ``paper.json``; ``tasks/foldK_select.json``), each
stamped with a key of the task's inputs; a rerun loads every result whose key matches instead of
running the task again. ``trial_ledger.parquet`` (:mod:`edgefinder.markets.ledger`) and
``study.json`` are written at the end. Workers read the ATLAS paths and write into ``DIR``
themselves, so both must be paths every worker sees (a shared filesystem).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError
from edgefinder.jsonsafe import jsonable
from edgefinder.markets._io import atomic_write_text
from edgefinder.markets.folds import Fold
from edgefinder.markets.state_cache import shared_states

__all__ = [
    "STUDY_FILE",
    "Instrument",
    "StudyConfig",
    "StudyError",
    "StudyResult",
    "learn_task",
    "paper_task",
    "run_study",
    "select_task",
]

STUDY_FILE = "study.json"
#: study.json keys that depend on the machine and the engine, not on the inputs
RUN_KEYS = ("engine", "timing")


class StudyError(EdgefinderError):
    """The study cannot run (bad --data, too few sessions) or one of its tasks failed."""


#: What a task stores, versioned: part of every task key, so a rerun in a study directory written
#: by an older edgefinder recomputes a task whose result would lack a field instead of reusing it.
TASK_FORMAT = 2


@dataclass(frozen=True)
class Instrument:
    """One ``--data SYMBOL=PATH``: the contract (``markets.instruments``) and its ATLAS root."""

    symbol: str
    data: str


@dataclass(frozen=True)
class StudyConfig:
    """Everything a task needs besides its instrument and fold (picklable, hashed into task keys).

    ``iterations``, ``seed``, ``timeframes``, ``cascade``, ``max_templates``, ``sampler``: Phases
    2–3 as ``markets run``; ``forward``: Phase 4's gates (``ForwardConfig`` fields);
    ``selection``: Phase 5's rule (``SelectionConfig`` fields); ``out``: the study directory."""

    out: str
    instruments: tuple[Instrument, ...]
    folds: tuple[Fold, ...]
    scheme: str
    iterations: int = 50
    seed: int = 0
    timeframes: tuple[str, ...] | None = None
    cascade: str = "context"
    max_templates: int = 48
    sampler: str = "qmc"
    forward: Mapping[str, Any] = field(default_factory=dict)
    selection: Mapping[str, Any] = field(default_factory=dict)

    def key(self, *parts: Any) -> str:
        """A task's key: the inputs that decide its result, hashed."""
        from edgefinder import __version__

        doc = {
            "version": __version__,
            "format": TASK_FORMAT,
            "config": {
                k: v for k, v in dataclasses.asdict(self).items() if k not in ("out", "folds")
            },
            "parts": parts,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]

    def task_dir(self, symbol: str, fold: int) -> Path:
        return Path(self.out) / "tasks" / symbol / f"fold{fold}"


def _next_session(date: str) -> str:
    """The date of the CME session after the one ending ``date`` (weekends skipped): the exclusive
    bound that ends a block at ``date`` (``--train-until``/``--forward-until`` semantics)."""
    d = _dt.date.fromisoformat(date) + _dt.timedelta(days=1)
    while d.weekday() >= 5:
        d += _dt.timedelta(days=1)
    return d.isoformat()


def _data_key(inst: Instrument) -> list[Any]:
    from edgefinder.markets import atlas
    from edgefinder.markets.checkpoints import files_fingerprint

    return [inst.symbol, files_fingerprint(inst.data, atlas.available_timeframes(inst.data))]


def _store(path: Path, doc: dict) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(jsonable(doc), sort_keys=True), path)
    return doc


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


# --------------------------------------------------------------------------------------------
# tasks (module-level functions: Dask pickles them by reference)
# --------------------------------------------------------------------------------------------


def learn_key(cfg: StudyConfig, inst: Instrument, fold: Fold) -> str:
    return cfg.key("learn", _data_key(inst), fold.as_dict())


def learn_task(cfg: StudyConfig, inst: Instrument, fold: Fold, key: str) -> dict:
    """Phases 2–4 of one instrument on one fold: learn on ``fold.learn``, replay up to the end of
    ``fold.test`` (its out-of-sample block). Returns (and stores as ``learn.json``) the Phase 4
    figures, the per-session gross PnL of every family in the test block and the ledger rows."""
    from rich.console import Console

    from edgefinder.markets.cluster import WorkerPool
    from edgefinder.markets.forward import ForwardConfig, run_forward_pass
    from edgefinder.markets.instruments import get_instrument
    from edgefinder.markets.ledger import playbook_rows
    from edgefinder.markets.orchestrator import Orchestrator

    ckpt = cfg.task_dir(inst.symbol, fold.index)
    t0, c0 = time.perf_counter(), _cpu()
    rows: list[dict] = []

    def on_event(event: str, info: dict) -> None:
        if event == "trials":
            rows.extend(playbook_rows(inst.symbol, fold.index, info))

    # Phase 3's template steps become tasks of this task's cluster only when each can be worth a
    # task: TPE runs a template's trials one by one (iterations x 5-10 ms); the default QMC design
    # scores them in one vectorized call of a few ms, and nested it was slower (measured in
    # docs/markets.md, "Running on a cluster").
    steps = WorkerPool() if cfg.sampler == "tpe" else None
    orch = Orchestrator(
        inst.data,
        ckpt,
        iterations=cfg.iterations,
        train_until=_next_session(fold.learn[1]),
        learn_from=fold.learn[0] if cfg.scheme == "rolling" else None,
        timeframes=list(cfg.timeframes) if cfg.timeframes else None,
        seed=cfg.seed,
        dashboard=False,
        console=Console(file=io.StringIO()),
        instrument=inst.symbol,
        cascade=cfg.cascade,
        max_templates=cfg.max_templates,
        sampler=cfg.sampler,
        on_playbook_event=on_event,
        task_pool=steps,
    )
    with shared_states():  # the ATLAS's states once per worker process, every fold a prefix
        # an unfinished task starts over: its ledger rows come from Phase 3's events
        summary = orch.run(fresh=True)
        t1, c1 = time.perf_counter(), _cpu()
        fwd = run_forward_pass(
            inst.data,
            ckpt,
            ForwardConfig(**{**cfg.forward, "instrument": inst.symbol}),
            train_until=fold.test[0],
            forward_until=_next_session(fold.test[1]),
            timeframes=orch.timeframes,
            fresh=True,
            day_lines=False,
            resumable=False,  # a killed task starts over: nothing resumes from a journal
        )
        c2 = _cpu()
    trades = fwd.trades  # what brain.pkl holds, without reading it back
    oos = trades[trades["out_of_sample"].astype(bool)].copy()
    # gross of costs: on a martingale the cost per trade makes the family that trades least the
    # steady "best", a persistence PBO would count as skill (see docs/markets.md, "PBO")
    oos["pnl"] = oos["pnl"] + get_instrument(inst.symbol).round_trip_cost_dollars
    by_family = (
        oos.groupby(["session", "family"], observed=True)["pnl"]
        .agg(pnl="sum", trades="size")
        .reset_index()
        if len(oos)
        else pd.DataFrame(columns=["session", "family", "pnl", "trades"])
    )
    rep = fwd.report
    doc = {
        "key": key,
        "instrument": inst.symbol,
        "fold": fold.index,
        "phases_2_3": {
            "patterns": summary.patterns,
            "templates": summary.templates,
            "library_templates": summary.library_templates,
        },
        "phase4": {
            "out_of_sample": rep.get("out_of_sample", {}),
            "in_sample_trades": rep.get("in_sample", {}).get("total_trades", 0),
        },
        "test_sessions": sorted({d["session"] for d in fwd.sessions if d.get("out_of_sample")}),
        "family_session_pnl": [
            [str(s), str(f), float(p), int(n)]
            for s, f, p, n in by_family[["session", "family", "pnl", "trades"]].itertuples(
                index=False
            )
        ],
        "ledger": rows,
        "timing": {
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": _cpu() - c0,
            "phase4_seconds": fwd.seconds,
            "phase4_replay_seconds": fwd.replay_seconds,
            "phase4_cpu_seconds": c2 - c1,
            "phase4_bars": fwd.bars,
            "phases_2_3_seconds": t1 - t0,
            "phase3_tasks": steps.steps if steps is not None else 0,
        },
    }
    return _store(ckpt / "learn.json", doc)


def select_key(cfg: StudyConfig, fold: Fold, learn_keys: Sequence[str]) -> str:
    return cfg.key("select", fold.as_dict(), list(learn_keys))


def select_task(cfg: StudyConfig, fold: Fold, key: str, learn: Sequence[dict]) -> dict:
    """Phase 5 of one fold over every instrument's test block at once (one BH family of tests,
    one deflation count); writes each instrument's production playbook (``pending_review``)."""
    from edgefinder.markets.brain import BayesianBrain
    from edgefinder.markets.checkpoints import BRAIN
    from edgefinder.markets.ledger import selection_rows
    from edgefinder.markets.selection import (
        SelectionConfig,
        family_evidence,
        run_strategy_selection,
    )

    del learn  # the dependency only orders this task after the learn tasks; it reads their files
    scfg = SelectionConfig(**cfg.selection)
    sep = " @ "
    tests = []
    for inst in cfg.instruments:
        t = BayesianBrain.load(cfg.task_dir(inst.symbol, fold.index) / BRAIN).trades()
        t = t[t["out_of_sample"].astype(bool)].copy()
        t["family"] = inst.symbol + sep + t["family"].astype(str)
        tests.append(t)
    pooled = pd.concat(tests, ignore_index=True) if tests else pd.DataFrame()
    families, members = family_evidence(pooled, scfg)
    out: dict[str, Any] = {"key": key, "fold": fold.index, "instruments": {}, "ledger": []}
    for inst in cfg.instruments:
        prefix = inst.symbol + sep

        def own(df: pd.DataFrame, prefix: str = prefix) -> pd.DataFrame:
            if df.empty:
                return df
            df = df[df["family"].astype(str).str.startswith(prefix)].copy()
            df["family"] = df["family"].astype(str).str[len(prefix) :]
            return df.reset_index(drop=True)

        fam_i, mem_i = own(families), own(members)
        res = run_strategy_selection(
            cfg.task_dir(inst.symbol, fold.index), scfg, evidence=(fam_i, mem_i)
        )
        promoted = sorted({f for e in res.production.values() for f in e["families"]})
        out["instruments"][inst.symbol] = {
            "production_templates": sorted(int(t) for t in res.production),
            "promoted_families": promoted,
            "families_tested": int(fam_i["tested"].sum()) if len(fam_i) else 0,
            "families": fam_i.to_dict(orient="records") if len(fam_i) else [],
            "cells": [
                [int(t), f]
                for t, e in sorted(res.production.items())
                for f in sorted(e["families"])
            ],
        }
        if len(fam_i):
            out["ledger"].extend(selection_rows(inst.symbol, fold.index, fam_i))
    out["families_tested"] = int(families["tested"].sum()) if len(families) else 0
    return _store(Path(cfg.out) / "tasks" / f"fold{fold.index}_select.json", out)


def paper_key(cfg: StudyConfig, inst: Instrument, fold: Fold, select_key: str) -> str:
    return cfg.key("paper", _data_key(inst), fold.as_dict(), select_key)


def paper_task(cfg: StudyConfig, inst: Instrument, fold: Fold, key: str, select: dict) -> dict:
    """The frozen production playbook of one instrument and fold on the fold's paper block."""
    from edgefinder.markets.brain import BayesianBrain
    from edgefinder.markets.checkpoints import BRAIN
    from edgefinder.markets.paper_trade import run_paper_trade

    ckpt = cfg.task_dir(inst.symbol, fold.index)
    t0, c0 = time.perf_counter(), _cpu()
    # the study paper-trades automatically: a person approves a playbook before real use
    with shared_states():
        res = run_paper_trade(ckpt, inst.data, fold.paper[0], fold.paper[1], allow_pending=True)
    rep = res.report
    # the promoted cells' own trades in the test block: what Phase 5 selected on (for the DSR)
    cells = {(int(t), str(f)) for t, f in select["instruments"][inst.symbol]["cells"]}
    tr = BayesianBrain.load(ckpt / BRAIN).trades()
    tr = tr[tr["out_of_sample"].astype(bool)]
    sel = [
        float(p)
        for t, f, p in tr[["template_id", "family", "pnl"]].itertuples(index=False)
        if (int(t), str(f)) in cells
    ]
    doc = {
        "key": key,
        "instrument": inst.symbol,
        "fold": fold.index,
        "paper_trades": int(rep["total_trades"]),
        "paper_pnl": float(rep["total_pnl"]),
        "paper": {k: rep[k] for k in ("from", "to", "sessions", "win_rate", "mean_pnl_per_trade")},
        "per_session": [
            [d["session"], float(d["pnl"]), int(d["trades"])] for d in rep["per_session"]
        ],
        "trade_pnl": [float(x) for x in res.trades["pnl"].to_numpy(np.float64)]
        if len(res.trades)
        else [],
        "selected_test_pnl": sel,
        "timing": {"seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0},
    }
    return _store(ckpt / "paper.json", doc)


# --------------------------------------------------------------------------------------------
# the study: task graph, engine, result
# --------------------------------------------------------------------------------------------


@dataclass
class StudyResult:
    """``doc`` (``study.json``), the ``ledger`` frame, and the run's counts: tasks ``ran`` and
    ``reused`` (loaded from the study directory)."""

    doc: dict
    ledger: pd.DataFrame
    ran: int
    reused: int
    path: Path


#: Select and paper tasks are short and end a fold's chain: they start as soon as they are ready.
FOLLOW_UP_PRIORITY = 1_000_000


def learn_priority(fold: Fold) -> int:
    """The longest learn tasks first, so that the short ones fill the workers at the end instead
    of one long task running alone (longest-processing-time-first order; it changes no result).
    A task's length grows with its weekdays from the first learning session to the end of the
    test block (an anchored study's last folds learn and replay the most)."""
    return len(pd.bdate_range(fold.learn[0], fold.test[1]))


def run_study(cfg: StudyConfig, engine: Any = None, engine_name: str = "serial") -> StudyResult:
    """Run (or resume) the study ``cfg``; ``engine`` is a :class:`~edgefinder.markets.cluster.TaskRunner`
    (Dask) or None to call every task in this process in order. Writes ``study.json`` and the
    trial ledger into ``cfg.out`` and returns them."""
    from edgefinder.markets.cluster import SerialRunner, TaskSpec

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = engine or SerialRunner()
    t0 = time.perf_counter()
    specs: list[TaskSpec] = []
    for fold in cfg.folds:
        names, keys = [], []
        for inst in cfg.instruments:
            names.append(f"learn-{inst.symbol}-{fold.index}")
            keys.append(learn_key(cfg, inst, fold))
            specs.append(
                TaskSpec(
                    names[-1],
                    learn_task,
                    (cfg, inst, fold),
                    keys[-1],
                    (),
                    cfg.task_dir(inst.symbol, fold.index) / "learn.json",
                    learn_priority(fold),
                )
            )
        sname, skey = f"select-{fold.index}", select_key(cfg, fold, keys)
        specs.append(
            TaskSpec(
                sname,
                select_task,
                (cfg, fold),
                skey,
                (tuple(names),),
                out / "tasks" / f"fold{fold.index}_select.json",
                FOLLOW_UP_PRIORITY,
            )
        )
        for inst in cfg.instruments:
            specs.append(
                TaskSpec(
                    f"paper-{inst.symbol}-{fold.index}",
                    paper_task,
                    (cfg, inst, fold),
                    paper_key(cfg, inst, fold, skey),
                    (sname,),
                    cfg.task_dir(inst.symbol, fold.index) / "paper.json",
                    FOLLOW_UP_PRIORITY,
                )
            )
    results = runner.run(specs)
    wall = time.perf_counter() - t0
    doc, ledger = assemble(cfg, results)
    doc["engine"] = engine_name
    timings = [r["timing"] for r in results.values() if "timing" in r]
    doc["timing"] = {
        "wall_seconds": wall,
        "task_seconds": float(sum(t["seconds"] for t in timings)),
        "tasks_ran": runner.ran,
        "tasks_reused": runner.reused,
        **{k: int(sum(t.get(k, 0) for t in timings)) for k in ("phase4_bars", "phase3_tasks")},
        **{
            k: float(sum(t.get(k, 0.0) for t in timings))
            for k in ("phase4_seconds", "phase4_replay_seconds", "phase4_cpu_seconds")
        },
    }
    from edgefinder.markets.ledger import write_ledger

    write_ledger(ledger, out)
    path = out / STUDY_FILE
    atomic_write_text(json.dumps(jsonable(doc), indent=2, sort_keys=True), path)
    return StudyResult(doc, ledger, runner.ran, runner.reused, path)


def _equity(points: list[tuple[str, float]]) -> list[list[Any]]:
    """Cumulative PnL by session, sessions in date order (sums sessions that repeat)."""
    s = pd.Series([p for _, p in points], index=[d for d, _ in points], dtype=np.float64)
    s = s.groupby(level=0).sum().sort_index()
    return [[str(d), float(v)] for d, v in s.cumsum().items()]


def assemble(cfg: StudyConfig, results: Mapping[str, dict]) -> tuple[dict, pd.DataFrame]:
    """``study.json`` and the trial ledger from the task results (a pure function of them)."""
    from edgefinder.markets.instruments import get_instrument
    from edgefinder.markets.ledger import ledger_frame
    from edgefinder.stats.overfitting import (
        deflated_sharpe,
        minimum_track_record_length,
        probability_of_backtest_overfitting,
    )
    from edgefinder.stats.performance import summarize_pnls

    rows: list[dict] = []
    for r in results.values():
        rows.extend(r.get("ledger", []))
    ledger = ledger_frame(rows)
    # the trials' dispersion from those with enough trades to estimate a Sharpe (a template's
    # search on a handful of trades scores near-constant PnL with a floored sd: huge, meaningless
    # ratios); the count is every trial
    min_n = int(cfg.selection.get("min_family_trades", 30))
    trial_sharpes = ledger.loc[ledger["n"] >= min_n, "sharpe"].to_numpy(np.float64)
    instruments: dict[str, Any] = {}
    stability: dict[tuple[str, str], list[int]] = {}
    all_paper: list[float] = []
    for inst in cfg.instruments:
        folds_out: list[dict[str, Any]] = []
        paper_pts: list[tuple[str, float]] = []
        oos_pts: list[tuple[str, float]] = []
        sel_pnl: list[float] = []
        paper_pnl: list[float] = []
        matrix: dict[tuple[str, str], float] = {}  # gross of the nominal round trip
        trades: dict[tuple[str, str], int] = {}
        sessions: list[str] = []
        for fold in cfg.folds:
            lr = results[f"learn-{inst.symbol}-{fold.index}"]
            sr = results[f"select-{fold.index}"]["instruments"][inst.symbol]
            pr = results[f"paper-{inst.symbol}-{fold.index}"]
            sessions.extend(lr["test_sessions"])
            for s, f, p, n in lr["family_session_pnl"]:
                matrix[(s, f)] = matrix.get((s, f), 0.0) + p
                trades[(s, f)] = trades.get((s, f), 0) + n
                oos_pts.append((s, p))
            paper_pts.extend((s, p) for s, p, _ in pr["per_session"])
            sel_pnl.extend(pr["selected_test_pnl"])
            paper_pnl.extend(pr["trade_pnl"])
            for fam in sr["promoted_families"]:
                stability.setdefault((inst.symbol, fam), []).append(fold.index)
            folds_out.append(
                {
                    "index": fold.index,
                    "learn": list(fold.learn),
                    "test": list(fold.test),
                    "paper": list(fold.paper),
                    "phases_2_3": lr["phases_2_3"],
                    "phase4_out_of_sample": lr["phase4"]["out_of_sample"],
                    "families_tested": sr["families_tested"],
                    "promoted_families": sr["promoted_families"],
                    "production_templates": sr["production_templates"],
                    "paper_trades": pr["paper_trades"],
                    "paper_pnl": pr["paper_pnl"],
                }
            )
        fams = sorted({f for _, f in matrix})
        pbo: dict[str, Any] = {"estimate": None, "reason": "fewer than 2 families traded"}
        if len(fams) >= 2 and len(sessions) >= 4:
            cells = [(s, f) for s in sorted(sessions) for f in fams]
            perf = np.array([matrix.get(c, 0.0) for c in cells]).reshape(-1, len(fams))
            blocks = min(16, len(sessions) - len(sessions) % 2)
            res = probability_of_backtest_overfitting(perf, blocks, seed=cfg.seed)
            # whether choosing the in-sample best earns is a question after costs, among the
            # families Phase 5 could choose (enough trades): the same splits on their net PnL.
            # A family of a dozen trades has a Sharpe near 0 from its idle sessions, which tops
            # families that lose steadily, and its few trades decide the figure by luck.
            n_tr = np.array([trades.get(c, 0) for c in cells]).reshape(perf.shape)
            net = perf - get_instrument(inst.symbol).round_trip_cost_dollars * n_tr
            eligible = n_tr.sum(axis=0) >= min_n
            p_loss = (
                probability_of_backtest_overfitting(
                    net[:, eligible], blocks, n_resamples=0
                ).probability_of_loss
                if eligible.sum() >= 2
                else None
            )
            pbo = {
                "estimate": res.estimate,
                "ci": [res.ci_low, res.ci_high],
                "p_value": res.p_value,
                "null_mean": res.null_mean,
                "resamples": res.n_resamples,
                "splits": res.n_splits,
                "blocks": res.n_blocks,
                "configurations": res.n_configs,
                "sessions": res.n,
                "degradation": res.degradation,
                "probability_of_loss": p_loss,
                "loss_configurations": int(eligible.sum()),
            }
        dsr: dict[str, Any] = {"estimate": None, "reason": "nothing promoted"}
        if len(sel_pnl) >= 3 and trial_sharpes.size:
            d = deflated_sharpe(sel_pnl, trial_sharpes, n_trials=len(ledger))
            dsr = dataclasses.asdict(d)
        mintrl: dict[str, Any] = {"estimate": None, "reason": "no paper trades"}
        if len(paper_pnl) >= 3:
            s = summarize_pnls(paper_pnl)
            tr = minimum_track_record_length(s.sharpe, s.skew, s.kurtosis, n=s.n)
            mintrl = dataclasses.asdict(tr)
        all_paper.extend(paper_pnl)
        instruments[inst.symbol] = {
            "data": inst.data,
            "folds": folds_out,
            "folds_promoting": sum(1 for f in folds_out if f["production_templates"]),
            "pbo": pbo,
            "dsr": dsr,
            "min_track_record": mintrl,
            "paper_pnl_total": float(sum(f["paper_pnl"] for f in folds_out)),
            "paper_trades_total": int(sum(f["paper_trades"] for f in folds_out)),
            "oos_equity": _equity(oos_pts),
            "paper_equity": _equity(paper_pts),
        }
    pooled = summarize_pnls(all_paper) if all_paper else None
    doc = {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "scheme": cfg.scheme,
        "folds": [f.as_dict() for f in cfg.folds],
        "units": {
            "pnl": "dollars per contract, net of commission and slippage",
            "sessions": "CME sessions, labelled by the date they end",
            "sharpe": "per trade (DSR, MinTRL) or per session (PBO), not annualized",
        },
        "config": {
            k: v
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("out", "folds", "instruments")
        },
        "instruments": instruments,
        "n_trials": int(len(ledger)),
        "trials_by_stage": {
            str(k): int(v) for k, v in ledger["stage"].value_counts().sort_index().items()
        },
        "stability": [
            {
                "instrument": sym,
                "family": fam,
                "folds_promoted": sorted(ks),
                "share": len(ks) / len(cfg.folds),
            }
            for (sym, fam), ks in sorted(stability.items())
        ],
        "pooled": {
            "paper_trades": pooled.n if pooled else 0,
            "paper_pnl_total": pooled.total_pnl if pooled else 0.0,
            "mean_pnl_per_trade": pooled.mean_pnl if pooled else 0.0,
            "p_value_mean_gt_0": pooled.p_value if pooled else 1.0,
            "instruments_promoting": sorted(
                s for s, v in instruments.items() if v["folds_promoting"]
            ),
        },
    }
    return doc, ledger


# --------------------------------------------------------------------------------------------
# building a study from the command line, and its printed report
# --------------------------------------------------------------------------------------------


def parse_data(items: Sequence[str]) -> tuple[Instrument, ...]:
    """``--data SYMBOL=PATH`` items: a known contract (``markets.instruments``) and an ATLAS root each."""
    from edgefinder.markets.instruments import get_instrument

    out: list[Instrument] = []
    for item in items:
        sym, sep, path = str(item).partition("=")
        if not sep or not sym.strip() or not path.strip():
            raise StudyError(f"--data must be SYMBOL=PATH (e.g. MNQ=DATA/ATLAS), got {item!r}")
        symbol = get_instrument(sym).symbol
        if any(i.symbol == symbol for i in out):
            raise StudyError(f"--data names {symbol} twice: one ATLAS per instrument")
        if not Path(path).is_dir():
            raise StudyError(f"--data {symbol}: ATLAS directory not found: {path}")
        out.append(Instrument(symbol, str(Path(path).resolve())))
    if not out:
        raise StudyError("--data SYMBOL=PATH is required (one per instrument)")
    return tuple(out)


def common_sessions(instruments: Sequence[Instrument]) -> list[_dt.date]:
    """The CME sessions every instrument's ATLAS has: the folds are laid on them, so that one
    fold is the same calendar block for every instrument (Phase 5 pools them)."""
    from edgefinder.markets.folds import atlas_sessions

    common: set[_dt.date] | None = None
    for inst in instruments:
        s = set(atlas_sessions(inst.data))
        common = s if common is None else common & s
    return sorted(common or set())


def print_study(console: Any, doc: dict) -> None:
    """The study's tables: per instrument and fold, overfitting, stability, the pooled verdict."""
    from rich.table import Table

    from edgefinder.markets.summary import money

    t = Table(title=f"Walk-forward study ({doc['scheme']}, {len(doc['folds'])} folds)")
    for c in (
        "instrument",
        "fold",
        "test",
        "OOS trades",
        "OOS PnL",
        "tested",
        "promoted",
        "paper",
        "paper trades",
        "paper PnL",
    ):
        t.add_column(c, justify="right" if c not in ("instrument", "test", "paper") else "left")
    for sym, inst in doc["instruments"].items():
        for f in inst["folds"]:
            oos = f["phase4_out_of_sample"]
            t.add_row(
                sym,
                str(f["index"]),
                " … ".join(f["test"]),
                f"{oos.get('total_trades', 0):,}",
                money(float(oos.get("total_pnl", 0.0))),
                str(f["families_tested"]),
                str(len(f["promoted_families"])),
                " … ".join(f["paper"]),
                f"{f['paper_trades']:,}",
                money(f["paper_pnl"]),
            )
    console.print(t)
    o = Table(title="Overfitting, per instrument")
    for c in (
        "instrument",
        "PBO (p)",
        "P(loss)",
        "DSR (trials)",
        "MinTRL (trades)",
        "paper trades",
        "paper PnL",
    ):
        o.add_column(c, justify="right" if c != "instrument" else "left")

    def num(x: Any, fmt: str) -> str:
        return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, fmt)

    for sym, inst in doc["instruments"].items():
        mt = inst["min_track_record"]
        o.add_row(
            sym,
            f"{num(inst['pbo'].get('estimate'), '.2f')} ({num(inst['pbo'].get('p_value'), '.2g')})"
            if inst["pbo"].get("estimate") is not None
            else "—",
            num(inst["pbo"].get("probability_of_loss"), ".2f"),
            f"{num(inst['dsr'].get('estimate'), '.3f')} ({doc['n_trials']:,})",
            f"{num(mt.get('estimate'), ',.0f')} ({'met' if mt.get('enough') else 'not met'})"
            if mt.get("estimate") is not None
            else "—",
            f"{inst['paper_trades_total']:,}",
            money(inst["paper_pnl_total"]),
        )
    console.print(o)
    if doc["stability"]:
        s = Table(title="Stability: folds in which a family was promoted")
        for c in ("instrument", "family", "folds", "share"):
            s.add_column(c)
        for r in doc["stability"]:
            s.add_row(
                r["instrument"],
                r["family"],
                ",".join(map(str, r["folds_promoted"])),
                f"{r['share']:.0%}",
            )
        console.print(s)
    else:
        console.print("Stability: no family was promoted in any fold.")
    p = doc["pooled"]
    console.print(
        f"Pooled paper trade: {p['paper_trades']:,} trades, {money(p['paper_pnl_total'])} "
        f"(mean {money(p['mean_pnl_per_trade'])}/trade, p {p['p_value_mean_gt_0']:.3g}); "
        f"instruments promoting: {', '.join(p['instruments_promoting']) or 'none'}; "
        f"{doc['n_trials']:,} trials in the ledger; engine {doc['engine']}"
    )
