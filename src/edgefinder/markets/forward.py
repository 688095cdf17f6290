"""Phase 4: the forward pass — replay every trading session with the playbook.

:func:`run_forward_pass` is a short loop over CME sessions that calls named steps:

1. **Scan** (:class:`~edgefinder.markets.cascade.FractalCascadeScanner`): the cascade of the
   discovery hierarchy, in the cascade mode and with the physics thresholds Phases 2–3 recorded
   (``state.json``), computed once over the whole series (physics is causal) — the scan that built
   the templates (docs/decisions.md §D19). Candidates are the entry timeframe's (15s) patterns with
   their chains.
2. **Match and gates** (:mod:`edgefinder.markets.replay`): nearest library centroid; Gate 1 distance
   < ``match_distance`` and depth >= ``min_depth``; Gate 2 the brain; Gate 3 one position at a time.
3. **Trade** (:class:`~edgefinder.markets.replay.SessionTrader`): WaveRider on the one exit simulator;
   each closed trade updates the brain.
4. **Session end**: a day line, and a checkpoint record appended to the
   :class:`~edgefinder.markets.journal.Journal` — the session's trades, gate counts and each trade's
   context at entry (``ctx_*`` columns, :mod:`edgefinder.markets.context`); a killed run resumes from
   it with the same result (``resumable=False``: no journal, for a caller that reruns the whole pass).

In-sample sessions (before ``train_until``, which Phases 2–3 learned from) and out-of-sample
sessions are reported apart (docs/decisions.md §D24). Sessions from ``forward_until`` on are not
replayed at all: they are held back for ``edgefinder markets paper-trade``, which judges the
selected playbook on data nothing chose.

**No look-ahead.** A parent pattern opens its child window at its bar's *close*, so a candidate bar
only sees parents whose bar closed by the time it opened; the entry fill is the candidate bar's
close; exits are judged from the next bar on.

Units: prices in points, PnL in US dollars per contract net of commission and slippage, times in
epoch seconds UTC from bar timestamps, durations in seconds. Sharpe is per trade unless labelled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.errors import EdgefinderError
from edgefinder.jsonsafe import jsonable
from edgefinder.markets import atlas
from edgefinder.markets._io import atomic_write_text, write_parquet
from edgefinder.markets.brain import TRADE_COLUMNS, BayesianBrain, compact
from edgefinder.markets.cascade import Cascade, FractalCascadeScanner
from edgefinder.markets.checkpoints import (
    BRAIN,
    FORWARD_FILES,
    JOURNAL,
    LIBRARY,
    REGRET,
    REPORT,
    SCALER,
    TRADES,
    ForwardRecord,
    check_dataset,
    file_digest,
    files_fingerprint,
    load_library,
    load_scaler,
    record_forward,
    training_record,
)
from edgefinder.markets.discovery import FractalDiscoveryAgent
from edgefinder.markets.engine import ReplayEngine
from edgefinder.markets.instruments import get_instrument
from edgefinder.markets.journal import Journal
from edgefinder.markets.physics import THRESHOLDS, PhysicsConfig
from edgefinder.markets.regret import BatchRegretAnalyzer, RegretConfig
from edgefinder.markets.replay import (
    Gates,
    Matched,
    SessionResult,
    match_candidates,
)
from edgefinder.markets.summary import fmt_epoch, sample_block
from edgefinder.markets.views import print_day, print_forward_report, session_progress

__all__ = [
    "JOURNAL",
    "REPLAY_STAGES",
    "REPORT",
    "ForwardConfig",
    "ForwardError",
    "ForwardResult",
    "FractalCascadeScanner",
    "Playbook",
    "check_against_training",
    "load_playbook",
    "resolve_hierarchy",
    "resolve_physics",
    "run_forward_pass",
]


class ForwardError(EdgefinderError):
    """The forward pass cannot run (no playbook or scaler, entry timeframe missing, bad journal)."""


@dataclass(frozen=True)
class ForwardConfig:
    """Phase 4 settings (``edgefinder markets run`` flags; defaults in :class:`edgefinder.settings.Settings`).

    ``match_distance``, ``min_prob``, ``min_conf``, ``min_depth``: the gates (:class:`replay.Gates`).
    ``entry_timeframe``: where positions are opened and managed (15s; the finest timeframe of the
    hierarchy not finer than it otherwise). ``regret_lookahead_bars``: bars of the next timeframe up
    that the regret analysis looks past each exit. ``instrument``: symbol for costs and PnL.
    """

    match_distance: float = Gates.match_distance
    min_prob: float = Gates.min_prob
    min_conf: float = Gates.min_conf
    min_depth: int = Gates.min_depth
    entry_timeframe: str = "15s"
    regret_lookahead_bars: int = 5
    instrument: str = "MNQ"

    @property
    def gates(self) -> Gates:
        return Gates(self.match_distance, self.min_prob, self.min_conf, self.min_depth)


#: The stages of :attr:`ForwardResult.timings` that replay bars (see :attr:`ForwardResult.replay_seconds`).
REPLAY_STAGES = ("read_and_states", "cascade_and_match", "sessions")


@dataclass
class ForwardResult:
    """What :func:`run_forward_pass` produced: the report dict, the brain, the trades and regret
    frames, per-session records, and whether every session was processed (``complete``)."""

    report: dict
    brain: BayesianBrain
    trades: pd.DataFrame
    regret: pd.DataFrame
    sessions: list[dict]
    complete: bool
    seconds: float = 0.0
    bars: int = 0
    timings: dict[str, float] = field(
        default_factory=dict
    )  # wall seconds per stage (not in the report)

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else float("nan")

    @property
    def replay_seconds(self) -> float:
        """Wall seconds of the replay itself (:data:`REPLAY_STAGES`: states, cascade, match and
        the session loop), the work that grows with the bars; the rest of :attr:`seconds` is paid
        once per pass (playbook load, the trade table, regret, report and files)."""
        return float(sum(self.timings.get(k, 0.0) for k in REPLAY_STAGES))


# --------------------------------------------------------------------------------------------
# guards: replay the playbook exactly as Phases 2–3 learned it
# --------------------------------------------------------------------------------------------


def resolve_hierarchy(
    data_dir: str | Path, checkpoint_dir: str | Path | None, timeframes: Sequence[str] | None = None
) -> list[str]:
    """The discovery hierarchy: ``timeframes`` if given, else the one recorded in ``state.json``, else
    every ATLAS timeframe."""
    agent = FractalDiscoveryAgent()
    if timeframes:
        return agent.resolve_timeframes(data_dir, list(timeframes))
    rec = training_record(checkpoint_dir) if checkpoint_dir is not None else None
    if rec is not None and rec.timeframes:
        return agent.resolve_timeframes(data_dir, list(rec.timeframes))
    if rec is not None and rec.levels_tfs:
        # An old record lists only the levels scanned (they stop at the first empty one); the
        # hierarchy continued with the finer timeframes present, which the entry level may need.
        present = atlas.available_timeframes(data_dir)
        top = atlas.DISCOVERY_ORDER.index(rec.levels_tfs[0])
        return agent.resolve_timeframes(
            data_dir, [tf for tf in atlas.DISCOVERY_ORDER[top:] if tf in present]
        )
    return agent.resolve_timeframes(data_dir, None)


def check_against_training(
    checkpoint_dir: Path, train_until: int | None, hierarchy: Sequence[str]
) -> None:
    """Refuse a forward pass that would mislabel its samples or match against the wrong hierarchy.

    A session that fed the playbook must never be reported (and significance-tested in Phase 5) as
    out-of-sample, so an explicit ``train_until`` earlier than the training one — or any
    ``train_until`` when training used all data — is an error; a later one is allowed (it only labels
    more sessions in-sample). Templates carry depths and roots of their hierarchy, so the forward
    pass's hierarchy must be the recorded one. Without a record (a library made elsewhere) nothing
    is checked.
    """
    rec = training_record(checkpoint_dir)
    if rec is None:
        return
    if train_until is not None and rec.has_train_until:
        if rec.train_until is None:
            raise ForwardError(
                f"--train-until {fmt_epoch(train_until)}: Phases 2–3 in {checkpoint_dir} learned from all "
                "the data, so no session is out-of-sample; rerun them with --train-until (add --fresh) "
                "or drop --train-until"
            )
        if int(train_until) < rec.train_until:
            raise ForwardError(
                f"--train-until {fmt_epoch(train_until)} is earlier than the {fmt_epoch(rec.train_until)} "
                f"Phases 2–3 in {checkpoint_dir} trained with: sessions that fed the playbook would count as "
                "out-of-sample; use the same date (or drop --train-until)"
            )
    if rec.timeframes and list(rec.timeframes) != list(hierarchy):
        raise ForwardError(
            f"--timeframes {','.join(hierarchy)} differs from the hierarchy Phases 2–3 in {checkpoint_dir} "
            f"learned the templates with ({','.join(rec.timeframes)}); use the same (or drop --timeframes)"
        )


def resolve_physics(
    checkpoint_dir: Path, requested: PhysicsConfig | Mapping[str, float] | None = None
) -> PhysicsConfig:
    """The physics thresholds of the playbook in ``checkpoint_dir``: the ones Phase 2 recorded.

    ``requested``: thresholds the user asked for explicitly (a full ``PhysicsConfig``, or a mapping
    of only the ones given by flag or ``EDGEFINDER_*``); any that differs from the record is refused
    with a one-line :class:`ForwardError` (the templates were learned from the patterns the recorded
    thresholds found). Without any record the requested thresholds, else the defaults, are used.
    """
    req = (
        dataclasses.asdict(requested)
        if isinstance(requested, PhysicsConfig)
        else dict(requested or {})
    )
    rec = training_record(Path(checkpoint_dir))
    if rec is None:
        return PhysicsConfig(**req)
    recorded = rec.physics
    bad = [k for k, v in req.items() if float(v) != float(getattr(recorded, k))]
    if bad:

        def flag(k: str) -> str:
            return f"--{k.replace('_', '-')} {req[k]:g}" if k in THRESHOLDS else f"{k} {req[k]:g}"

        asked = ", ".join(flag(k) for k in bad)
        had = ", ".join(f"{getattr(recorded, k):g}" for k in bad)
        raise ForwardError(
            f"{asked} differs from the {had} Phases 2–3 in {checkpoint_dir} found the playbook's patterns with "
            "(flag or EDGEFINDER_* setting); rerun them with it (`markets run` without --forward-pass, or add "
            "--fresh) or drop it"
        )
    return recorded


# --------------------------------------------------------------------------------------------
# the playbook as the replay needs it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Playbook:
    """The Phase 3 library prepared for matching: ids, centroids scaled once, exit parameters."""

    library: dict[int, dict]
    scaler: Any
    template_ids: np.ndarray
    centroids_scaled: np.ndarray
    params: dict[int, dict]

    def match(self, cascade: Cascade, states: Mapping[str, Any] | None = None) -> Matched:
        """The cascade's entry-level patterns matched to this library (``replay.match_candidates``),
        with their context at entry when ``states`` (every level's arrays) are given."""
        return match_candidates(
            cascade, self.template_ids, self.centroids_scaled, self.scaler, states
        )


def load_playbook(checkpoint_dir: Path) -> Playbook:
    """``pattern_library.pkl`` and ``clustering_scaler.pkl`` of ``checkpoint_dir`` (one-line errors)."""
    library = load_library(checkpoint_dir, ForwardError)
    scaler = load_scaler(checkpoint_dir, ForwardError)
    ids = np.array(sorted(library), dtype=np.int64)
    if ids.size and scaler is not None:
        cents = np.array([np.asarray(library[int(t)]["centroid"], dtype=np.float64) for t in ids])
        scaled = scaler.transform(cents)
    else:
        scaled = np.zeros((0, 11))
    return Playbook(
        library=library,
        scaler=scaler,
        template_ids=ids,
        centroids_scaled=scaled,
        params={int(t): dict(library[int(t)].get("params", {})) for t in ids},
    )


def _regret_timeframe(data_dir: Path, entry_tf: str) -> str:
    """The next timeframe up from the entry timeframe that the ATLAS holds (the entry tf if none)."""
    present = set(atlas.available_timeframes(data_dir))
    up = sorted(
        (tf for tf in present if atlas.TIMEFRAMES[tf] > atlas.TIMEFRAMES[entry_tf]),
        key=lambda tf: atlas.TIMEFRAMES[tf],
    )
    return up[0] if up else entry_tf


def _fingerprint(
    data_dir: Path,
    ckpt: Path,
    hierarchy: list[str],
    cfg: ForwardConfig,
    train_until: int | None,
    forward_until: int | None,
    regret_tf: str,
    physics: PhysicsConfig,
    cascade: str,
) -> str:
    doc = {
        "files": files_fingerprint(data_dir, [*hierarchy, regret_tf]),
        "hierarchy": hierarchy,
        "config": dataclasses.asdict(cfg),
        "train_until": train_until,
        "forward_until": forward_until,
        "library": file_digest(ckpt / LIBRARY),
        "scaler": file_digest(ckpt / SCALER),
        "physics": dataclasses.asdict(physics),
        "cascade": cascade,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


class _Regret:
    """The regret analysis on the bars of the next timeframe up (read once)."""

    def __init__(
        self,
        data_dir: Path,
        regret_tf: str,
        states: Mapping[str, Any],
        end: int | None,
        instrument: Any,
        lookahead: int,
    ) -> None:
        if regret_tf in states:  # already read for the cascade
            st = states[regret_tf]
            self.bars = pd.DataFrame(
                {"timestamp": st["timestamp"], "high": st["high"], "low": st["low"]}
            )
        else:
            self.bars = atlas.read_bars(data_dir, regret_tf, None, end)
        self.ts = self.bars["timestamp"].to_numpy(np.float64)
        self.hi = self.bars["high"].to_numpy(np.float64)
        self.lo = self.bars["low"].to_numpy(np.float64)
        self.bar_s = float(atlas.TIMEFRAMES[regret_tf])
        self.lookahead = int(lookahead)
        self.analyzer = BatchRegretAnalyzer(
            instrument, RegretConfig(lookahead_bars=lookahead), int(self.bar_s)
        )

    def all_trades(self, trades: pd.DataFrame) -> pd.DataFrame:
        """Regret markers of every trade at once (the same figures as per session: lookahead windows
        never cross the daily break)."""
        return self.analyzer.batch_analyze_day(trades if len(trades) else [], self.bars).markers


# --------------------------------------------------------------------------------------------
# the forward pass
# --------------------------------------------------------------------------------------------


def run_forward_pass(
    data_dir: str | Path,
    checkpoint_dir: str | Path,
    config: ForwardConfig | None = None,
    train_until: Any = None,
    *,
    forward_until: Any = None,
    timeframes: Sequence[str] | None = None,
    console: Console | None = None,
    fresh: bool = False,
    max_sessions: int | None = None,
    on_session: Callable[[int, dict], None] | None = None,
    day_lines: bool = True,
    physics: PhysicsConfig | Mapping[str, float] | None = None,
    resumable: bool = True,
) -> ForwardResult:
    """Phase 4 over the sessions of the ATLAS at ``data_dir``; see the module doc.

    Args:
        data_dir: ATLAS root. checkpoint_dir: holds the Phase 2–3 artifacts; Phase 4 writes
            ``phase4_journal.bin``, ``brain.pkl``, ``phase4_trades.parquet``, ``phase4_regret.parquet``
            and ``phase4_report.json`` there, and its sample boundaries into ``state.json``.
        config: gates and entry timeframe (:class:`ForwardConfig`).
        train_until: sessions starting at or after it are out-of-sample (``--train-until``; a date is
            the start of the CME session ending that day). Default: the value Phases 2–3 recorded.
        forward_until: sessions starting at or after it are not replayed (held back for paper
            trading). Default: none held back.
        timeframes: the hierarchy; default: the one discovery used (``state.json``).
        console: Rich console for day lines and the final block (None: silent).
        fresh: ignore (delete) an existing journal. Otherwise a journal with the same inputs
            fingerprint is resumed from its last complete session.
        max_sessions: stop after processing this many sessions in this call (the journal keeps them;
            a later call resumes). ``on_session(index, record)`` is called after each checkpoint.
        day_lines: print one summary line per session (the original day summary).
        physics: thresholds the caller asked for explicitly; the cascade uses the ones Phase 2
            recorded and refuses differing ones (:func:`resolve_physics`).
        resumable: keep the session journal. False for a caller that reruns the whole pass after
            an interruption anyway (a walk-forward study's task): no journal is written, which
            saves a record and each trade's context per session.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    t_mark = t_start

    def lap(name: str) -> None:
        nonlocal t_mark
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t_mark
        t_mark = now

    cfg = config or ForwardConfig()
    data_dir, ckpt = Path(data_dir), Path(checkpoint_dir)
    if not data_dir.is_dir():
        raise ForwardError(f"data directory not found: {data_dir}")
    ckpt.mkdir(parents=True, exist_ok=True)
    inst = get_instrument(cfg.instrument)
    rec = training_record(ckpt)
    check_dataset(ckpt, data_dir, ForwardError)
    try:
        t_until = atlas.session_start(train_until, "--train-until")
        f_until = atlas.session_start(forward_until, "--forward-until")
    except atlas.AtlasError as exc:
        raise ForwardError(str(exc)) from None
    if t_until is None and rec is not None:
        t_until = rec.train_until
    if f_until is not None and t_until is not None and f_until <= t_until:
        raise ForwardError(
            f"--forward-until {fmt_epoch(f_until)} must come after --train-until "
            f"{fmt_epoch(t_until)}: no out-of-sample session would be replayed"
        )
    playbook = load_playbook(ckpt)
    lap("load")

    # ---- 1. scan: the hierarchy, mode and thresholds the templates were learned with
    hierarchy = resolve_hierarchy(data_dir, ckpt, timeframes)
    check_against_training(ckpt, t_until, hierarchy)
    phys = resolve_physics(ckpt, physics)
    mode = rec.cascade if rec is not None else "context"
    scanner = FractalCascadeScanner(hierarchy, cfg.entry_timeframe, phys, mode)
    entry_tf = scanner.entry_timeframe
    engine = ReplayEngine(playbook, scanner, inst, cfg.gates)
    states = scanner.compute_states(data_dir, end=f_until)
    lap("read_and_states")
    engine.prepare(data_dir, end=f_until, states=states)
    lap("cascade_and_match")

    # ---- sessions of the entry timeframe, and what each needs
    ts = engine.timestamps
    s_start, s_label = engine.s_start, engine.s_label
    n_sessions = engine.n_sessions
    s_oos = (ts[s_start] >= t_until) if t_until is not None else np.zeros(n_sessions, bool)
    regret_tf = _regret_timeframe(data_dir, entry_tf)
    regret = _Regret(data_dir, regret_tf, states, f_until, inst, cfg.regret_lookahead_bars)

    # ---- resume: the brain's counts are a pure function of the trades, in order
    if fresh:
        for name in FORWARD_FILES:
            (ckpt / name).unlink(missing_ok=True)
    fp = _fingerprint(
        data_dir, ckpt, scanner.timeframes, cfg, t_until, f_until, regret_tf, phys, mode
    )
    journal: Journal | None = None
    if resumable:
        try:
            journal = Journal(ckpt / JOURNAL, fp, sessions=n_sessions)
        except ValueError as exc:
            raise ForwardError(str(exc)) from None
    else:
        (ckpt / JOURNAL).unlink(missing_ok=True)  # nothing may resume from an older one
    resumed = journal.records if journal is not None else []
    done: list[tuple[SessionResult, bool, str]] = []
    days: list[dict] = []
    for r, res in zip(resumed, engine.resume(resumed)):
        done.append((res, r["day"]["out_of_sample"], r["day"]["session"]))
        days.append(r["day"])
    lap("sessions_setup_and_resume")

    # ---- 2–4. the session loop (regret is computed once at the end: it looks past the exits and
    # never feeds a decision, so per session or at once gives the same figures)
    first = len(resumed)
    stop_at = n_sessions if max_sessions is None else min(n_sessions, first + int(max_sessions))
    with (
        session_progress(console, "Phase 4 — forward pass", n_sessions, first) as advance,
        journal or contextlib.nullcontext(),
    ):
        for k in range(first, stop_at):
            oos, label = bool(s_oos[k]), str(s_label[k])
            res = engine.session(k, learn=True)
            day = _day_record(k, label, oos, res, engine.brain_stats())
            if journal is not None:
                journal.append(
                    {
                        "index": k,
                        "day": day,
                        "trades": res.trades,
                        "gates": res.gates,
                        "context": engine.trade_context(res.trades["cand"]),
                    }
                )
            done.append((res, oos, label))
            days.append(day)
            if console is not None and day_lines:
                print_day(console, day)
            advance()
            if on_session is not None:
                on_session(k, day)
    lap("sessions")

    # ---- artifacts and report
    complete = len(days) == n_sessions
    brain = engine.finish(done)
    tdf = brain.trades()
    regret_df = regret.all_trades(tdf)
    if len(regret_df):
        eff = regret_df["exit_efficiency"].groupby(tdf["session"].to_numpy()).mean()
        for d in days:
            d["avg_exit_efficiency"] = float(eff.get(d["session"], float("nan")))
    packed = compact(tdf)
    brain.save(ckpt / BRAIN, packed)
    ctx_cols = [c for c in packed.columns if c.startswith("ctx_")]
    write_parquet(packed[[*TRADE_COLUMNS, "side", *ctx_cols]], ckpt / TRADES)
    write_parquet(compact(regret_df), ckpt / REGRET)
    report = _report(
        cfg,
        inst,
        phys,
        mode,
        scanner.timeframes,
        entry_tf,
        regret_tf,
        t_until,
        f_until,
        n_sessions,
        int(ts.size),
        engine.gate_counts,
        days,
        tdf,
        regret_df,
        int(playbook.template_ids.size),
        complete,
    )
    atomic_write_text(json.dumps(jsonable(report), indent=2, sort_keys=True), ckpt / REPORT)
    if n_sessions:
        record_forward(
            ckpt,
            ForwardRecord(
                first_session=str(s_label[0]),
                last_session=str(s_label[-1]),
                train_until=t_until,
                forward_until=f_until,
                sessions=n_sessions,
            ),
        )
    lap("finalize")
    seconds = time.perf_counter() - t_start
    if console is not None:
        print_forward_report(console, report, cfg, seconds, ckpt / REPORT)
    return ForwardResult(
        report=report,
        brain=brain,
        trades=tdf,
        regret=regret_df,
        sessions=days,
        complete=complete,
        seconds=seconds,
        bars=int(ts.size),
        timings=timings,
    )


def _day_record(
    k: int, label: str, oos: bool, res: SessionResult, brain_stats: dict[str, int]
) -> dict:
    pnl = np.asarray(res.trades["pnl"], np.float64)
    wins = int((pnl > 0).sum())
    return {
        "index": k,
        "session": label,
        "out_of_sample": oos,
        "trades": int(pnl.size),
        "wins": wins,
        "losses": int(pnl.size) - wins,
        "pnl": float(pnl.sum()),
        "avg_exit_efficiency": float("nan"),
        "brain_templates": brain_stats["templates_seen"],
        "brain_trades": brain_stats["trades"],
    }


def _report(
    cfg: ForwardConfig,
    inst: Any,
    phys: PhysicsConfig,
    mode: str,
    hierarchy: list[str],
    entry_tf: str,
    regret_tf: str,
    t_until: int | None,
    f_until: int | None,
    n_sessions: int,
    n_bars: int,
    gates: dict,
    days: list[dict],
    tdf: pd.DataFrame,
    regret: pd.DataFrame,
    n_templates: int,
    complete: bool,
) -> dict:
    """``phase4_report.json``: no wall-clock values, so it is byte-identical across reruns."""
    report: dict[str, Any] = {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "complete": complete,
        "sessions_total": n_sessions,
        "sessions_processed": len(days),
        "entry_timeframe": entry_tf,
        "timeframes": hierarchy,
        "cascade": mode,
        "regret_timeframe": regret_tf,
        "train_until": t_until,
        "forward_until": f_until,
        "config": dataclasses.asdict(cfg),
        "instrument": dataclasses.asdict(inst),
        "physics": dataclasses.asdict(phys),
        "bars_entry_timeframe": n_bars,
        "gates": gates,
        "units": {
            "pnl": "dollars per contract, net of commission and slippage",
            "sharpe_per_trade": "mean/std of trade PnL",
            "times": "epoch seconds (bar time)",
        },
    }
    frame = pd.DataFrame(days)
    daily = frame["pnl"].to_numpy(np.float64) if len(frame) else np.zeros(0)
    report["all"] = sample_block(tdf, len(frame), daily, n_templates)
    if t_until is not None:
        is_d = ~frame["out_of_sample"].to_numpy(bool) if len(frame) else np.zeros(0, bool)
        is_t = ~tdf["out_of_sample"].to_numpy(bool) if len(tdf) else np.zeros(0, bool)
        report["in_sample"] = sample_block(tdf[is_t], int(is_d.sum()), daily[is_d], n_templates)
        report["out_of_sample"] = sample_block(
            tdf[~is_t], int((~is_d).sum()), daily[~is_d], n_templates
        )
    if len(regret):
        counts = regret["regret_type"].value_counts()
        report["regret"] = {
            "avg_exit_efficiency": float(regret["exit_efficiency"].mean()),
            **{
                k: int(counts.get(k, 0)) for k in ("optimal", "closed_too_early", "closed_too_late")
            },
            "left_on_table": float(regret["left_on_table"].sum()),
            "gave_back": float(regret["gave_back"].sum()),
        }
    report["sessions"] = days
    return report
