"""Benchmark: Phases 2–3 and Phase 4 (the forward pass) at the defaults on a 250-session synthetic year,
beside two backtesting libraries on the same 15s bars in the same run.

    .venv/bin/python bench/markets_forward.py [--sessions 250] [--iterations 50] [--edge reverting]
        [--cascades context,strict] [--repeats 3] [--skip-backtesting]

Steps: build a synthetic ATLAS (15s..1D) with ``markets.synth``; run Phases 2–3 at the defaults (full
hierarchy, ``--iterations 50``) with ``--train-until`` at two thirds, timed (goal: <= 60 s); run the forward pass
once to warm up (numba's on-disk cache load, page cache), then ``--repeats`` timed runs, each from
scratch (``fresh=True``: no journal to resume) and each covering **everything** Phase 4 does:
reading every level of the ATLAS, physics states, the cascade, matching, gates, WaveRider bar by bar,
regret, the per-session journal checkpoint, the report and artifact files.

Baselines on the same 15s closes: vectorbt's ``Portfolio.from_signals`` with a 10/30-bar simple
moving-average crossover (MA computation + signals + portfolio, numba-compiled; compiled first on a
slice so compile time is excluded), and backtesting.py's ``Backtest.run`` with the same crossover
(its event loop, one timed run). Throughput = 15s bars / wall seconds. Goals on the 2-core machine:
Phase 4 >= 1,000,000 bars/s, Phases 2–3 <= 60 s. Load average is printed beside them (the machine is
often shared). These figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

# backtesting.py's progress bar would garble a piped log; tqdm reads this when it is first imported
os.environ.setdefault("TQDM_DISABLE", "1")


def _phase4(data: Path, ck: Path, repeats: int) -> tuple[list[float], int, dict, dict]:
    from edgefinder.markets.forward import run_forward_pass

    warm = run_forward_pass(data, ck, fresh=True)  # warm-up: numba cache load, page cache
    secs, timings, cpus = [], [], []
    res = warm
    for _ in range(repeats):
        c0 = time.process_time()
        res = run_forward_pass(data, ck, fresh=True)
        cpus.append(time.process_time() - c0)
        secs.append(res.seconds)
        timings.append(res.timings)
    best = timings[int(np.argmin(secs))]
    # CPU seconds (all threads) beside wall: on a shared machine wall time measures the others' load
    return secs, res.bars, res.report, {"warm_up_s": warm.seconds, "cpu_s_min": min(cpus), **best}


def _vectorbt(close: pd.Series, repeats: int) -> tuple[list[float], int]:
    import vectorbt as vbt

    def run(c: pd.Series) -> int:
        fast = vbt.MA.run(c, 10).ma
        slow = vbt.MA.run(c, 30).ma
        pf = vbt.Portfolio.from_signals(
            c,
            fast.vbt.crossed_above(slow),
            fast.vbt.crossed_below(slow),
            short_entries=None,
            freq="15s",
        )
        return int(pf.trades.count())

    run(close.iloc[:5000])  # compile outside the timing
    secs, n_trades = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n_trades = run(close)
        secs.append(time.perf_counter() - t0)
    return secs, n_trades


def _backtesting(bars: pd.DataFrame) -> tuple[float, int]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 30)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell()

    df = pd.DataFrame(
        {
            "Open": bars["open"].to_numpy(),
            "High": bars["high"].to_numpy(),
            "Low": bars["low"].to_numpy(),
            "Close": bars["close"].to_numpy(),
            "Volume": bars["volume"].to_numpy(),
        },
        index=pd.to_datetime(bars["timestamp"].to_numpy(), unit="s"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = Backtest(df, SmaCross, cash=1e9, finalize_trades=True).run()
        secs = time.perf_counter() - t0
    return secs, int(stats["# Trades"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=250)
    ap.add_argument("--iterations", type=int, default=50, help="Phase 3 trials per template")
    ap.add_argument("--edge", default="reverting", choices=["none", "planted", "reverting"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--cascades",
        default="context,strict",
        help="cascade modes to time (context is the default; strict is the original funnel, which "
        "keeps a handful of 15s entries a quarter)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--skip-backtesting", action="store_true", help="skip backtesting.py (its loop is slow)"
    )
    ap.add_argument("--workdir", default=None, help="keep the ATLAS and checkpoints here")
    args = ap.parse_args()

    from edgefinder.markets import atlas
    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

    console = Console(width=160)
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    root = Path(args.workdir or tmp.name)  # type: ignore[union-attr]
    data = root / "atlas"
    t0 = time.perf_counter()
    if not (data / "15s").exists():
        generate_atlas(data, SynthConfig(sessions=args.sessions, seed=args.seed, edge=args.edge))  # type: ignore[arg-type]
    t_synth = time.perf_counter() - t0
    train_until = session_dates(SynthConfig().start, args.sessions)[
        (2 * args.sessions) // 3
    ].isoformat()
    rows, notes, n_bars, p23 = [], [], 0, []
    cpu_s: list[float] = []
    for k, mode in enumerate(args.cascades.split(",")):
        ck = root / f"ck{k}"
        orch = Orchestrator(
            data,
            ck,
            iterations=args.iterations,
            train_until=train_until,
            seed=args.seed,
            dashboard=False,
            console=Console(file=io.StringIO()),
            cascade=mode,
        )
        t1 = time.perf_counter()
        summary = orch.run(fresh=True)
        secs23 = time.perf_counter() - t1
        p23.append((mode, secs23, summary))
        console.print(
            f"cascade {mode}, hierarchy {','.join(summary.timeframes)}: Phases 2–3 {secs23:.1f} s "
            f"({', '.join(f'{ph} {v:.1f} s' for ph, v in summary.seconds.items())}); {summary.patterns:,} "
            f"patterns, {summary.templates} templates, {summary.library_templates} library entries"
        )
        secs, n_bars, report, timings = _phase4(data, ck, args.repeats)
        cpu_s.append(timings["cpu_s_min"])
        a, o = report["all"], report["out_of_sample"]
        rows.append(
            (
                f"edgefinder Phase 4, {mode} cascade (cascade, gates, WaveRider, regret, "
                f"checkpoints)",
                min(secs),
                statistics.median(secs),
                a["total_trades"],
            )
        )
        notes.append(
            f"[{mode}] stages of the best run (s): "
            + ", ".join(f"{name} {v:.3f}" for name, v in timings.items())
            + f"; {a['total_trades']:,} trades ({report['gates']['candidates']:,} candidates), win rate "
            f"{a['win_rate']:.1%}, PnL ${a['total_pnl']:,.2f}; out-of-sample {o['total_trades']:,} trades, "
            f"${o['mean_pnl_per_trade']:,.2f} a trade (p {o['p_value_mean_pnl_gt_0']:.2g})"
        )
    console.print(
        f"synthetic ATLAS: {args.sessions} sessions ({args.edge}, seed {args.seed}) built in {t_synth:.1f} s"
    )
    bars15 = atlas.read_bars(data, "15s")
    assert len(bars15) == n_bars
    close = pd.Series(
        bars15["close"].to_numpy(), index=pd.to_datetime(bars15["timestamp"].to_numpy(), unit="s")
    )
    vb_secs, vb_trades = _vectorbt(close, args.repeats)
    rows.append(
        (
            "vectorbt Portfolio.from_signals, SMA 10/30 crossover",
            min(vb_secs),
            statistics.median(vb_secs),
            vb_trades,
        )
    )
    if not args.skip_backtesting:
        bt_secs, bt_trades = _backtesting(bars15)
        rows.append(
            (
                "backtesting.py Backtest.run, SMA 10/30 crossover (1 run)",
                bt_secs,
                bt_secs,
                bt_trades,
            )
        )

    table = Table(title=f"Throughput on the same {n_bars:,} 15s bars ({args.sessions} sessions)")
    for col in ("engine", "best s", "median s", "bars/s (best)", "trades"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for name, best, med, trades in rows:
        table.add_row(name, f"{best:.3f}", f"{med:.3f}", f"{n_bars / best:,.0f}", f"{trades:,}")
    console.print(table)
    for line in notes:
        console.print(line)
    p4 = [n_bars / r[1] for r in rows if r[0].startswith("edgefinder")]
    console.print(
        "Goal Phase 4 >= 1,000,000 bars/s: "
        + ", ".join(f"{v:,.0f} ({'met' if v >= 1e6 else 'NOT met'})" for v in p4)
        + "; per CPU-second: "
        + ", ".join(f"{n_bars / c:,.0f}" for c in cpu_s)
        + " (Phase 4 includes the context at entry of every trade)"
    )
    console.print(
        f"Goal Phases 2–3 <= 60 s at --iterations {args.iterations}: "
        + ", ".join(f"{mode} {t:.1f} s ({'met' if t <= 60 else 'NOT met'})" for mode, t, _ in p23)
    )
    console.print(
        f"load average during the run: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores"
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
