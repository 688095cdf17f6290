"""Benchmark: Phase 4 (the forward pass) throughput over a 250-session synthetic year, beside two
backtesting libraries on the same 15s bars in the same run.

    .venv/bin/python bench/markets_forward.py [--sessions 250] [--iterations 20] [--edge planted]
        [--hierarchies "1D,4h,1h,15m,5m,1m,15s;5m,1m,15s"] [--repeats 3] [--skip-backtesting]

Steps: build a synthetic ATLAS (15s..1D) with ``markets.synth``; run Phases 2–3 with
``--train-until`` at two thirds (their seconds are printed for context only); run the forward pass
once to warm up (numba's on-disk cache load, page cache), then ``--repeats`` timed runs, each from
scratch (``fresh=True``: no journal to resume) and each covering **everything** Phase 4 does:
reading every level of the ATLAS, physics states, the cascade, matching, gates, WaveRider bar by bar,
regret, the per-session journal checkpoint, the report and artifact files.

Baselines on the same 15s closes: vectorbt's ``Portfolio.from_signals`` with a 10/30-bar simple
moving-average crossover (MA computation + signals + portfolio, numba-compiled; compiled first on a
slice so compile time is excluded), and backtesting.py's ``Backtest.run`` with the same crossover
(its event loop, one timed run). Throughput = 15s bars / wall seconds. Goal (issue 5): Phase 4
>= 1,000,000 bars/s on the 2-core machine. These figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table


def _phase4(data: Path, ck: Path, repeats: int) -> tuple[list[float], int, dict, dict]:
    from edgefinder.markets.forward import run_forward_pass

    warm = run_forward_pass(data, ck, fresh=True)  # warm-up: numba cache load, page cache
    secs, timings = [], []
    res = warm
    for _ in range(repeats):
        res = run_forward_pass(data, ck, fresh=True)
        secs.append(res.seconds)
        timings.append(res.timings)
    best = timings[int(np.argmin(secs))]
    return secs, res.bars, res.report, {"warm_up_s": warm.seconds, **best}


def _vectorbt(close: pd.Series, repeats: int) -> tuple[list[float], int]:
    import vectorbt as vbt

    def run(c: pd.Series) -> int:
        fast = vbt.MA.run(c, 10).ma
        slow = vbt.MA.run(c, 30).ma
        pf = vbt.Portfolio.from_signals(c, fast.vbt.crossed_above(slow), fast.vbt.crossed_below(slow),
                                        short_entries=None, freq="15s")
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

    df = pd.DataFrame({"Open": bars["open"].to_numpy(), "High": bars["high"].to_numpy(),
                       "Low": bars["low"].to_numpy(), "Close": bars["close"].to_numpy(),
                       "Volume": bars["volume"].to_numpy()},
                      index=pd.to_datetime(bars["timestamp"].to_numpy(), unit="s"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = Backtest(df, SmaCross, cash=1e9, finalize_trades=True).run()
        secs = time.perf_counter() - t0
    return secs, int(stats["# Trades"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=250)
    ap.add_argument("--iterations", type=int, default=10, help="Phase 3 trials per template (context only)")
    ap.add_argument("--edge", default="planted", choices=["none", "planted"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hierarchies", default="1D,4h,1h,15m,5m,1m,15s;5m,1m,15s",
                    help="';'-separated hierarchies to time Phase 4 with (the full one trades rarely: every "
                    "15s entry needs parents on all six levels above; the shallow one is the busy case)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-backtesting", action="store_true", help="skip backtesting.py (its loop is slow)")
    ap.add_argument("--workdir", default=None, help="keep the ATLAS and checkpoints here")
    args = ap.parse_args()

    from edgefinder.markets import atlas
    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

    console = Console()
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    root = Path(args.workdir or tmp.name)  # type: ignore[union-attr]
    data = root / "atlas"
    t0 = time.perf_counter()
    if not (data / "15s").exists():
        generate_atlas(data, SynthConfig(sessions=args.sessions, seed=args.seed, edge=args.edge))  # type: ignore[arg-type]
    t_synth = time.perf_counter() - t0
    train_until = session_dates(SynthConfig().start, args.sessions)[(2 * args.sessions) // 3].isoformat()
    rows, notes, n_bars = [], [], 0
    for k, tfs in enumerate(args.hierarchies.split(";")):
        ck = root / f"ck{k}"
        orch = Orchestrator(data, ck, iterations=args.iterations, train_until=train_until, timeframes=tfs,
                            seed=args.seed, dashboard=False, console=Console(file=io.StringIO()))
        summary = orch.run()
        ran = "resumed from checkpoints" if not summary.ran else f"{summary.seconds} s"
        console.print(f"hierarchy {','.join(summary.timeframes)}: Phases 2–3 {ran}, "
                      f"{summary.library_templates} templates (train until {train_until})")
        secs, n_bars, report, timings = _phase4(data, ck, args.repeats)
        a, o = report["all"], report["out_of_sample"]
        rows.append((f"edgefinder Phase 4, hierarchy {tfs} (cascade, gates, WaveRider, regret, "
                     f"checkpoints)", min(secs), statistics.median(secs), a["total_trades"]))
        notes.append(f"[{tfs}] stages of the best run (s): "
                     + ", ".join(f"{name} {v:.3f}" for name, v in timings.items())
                     + f"; {a['total_trades']:,} trades ({report['gates']['candidates']:,} candidates), win rate "
                     f"{a['win_rate']:.1%}, PnL ${a['total_pnl']:,.2f}; out-of-sample {o['total_trades']:,} trades, "
                     f"PnL ${o['total_pnl']:,.2f}")
    console.print(f"synthetic ATLAS: {args.sessions} sessions ({args.edge}, seed {args.seed}) built in {t_synth:.1f} s")
    bars15 = atlas.read_bars(data, "15s")
    assert len(bars15) == n_bars
    close = pd.Series(bars15["close"].to_numpy(), index=pd.to_datetime(bars15["timestamp"].to_numpy(), unit="s"))
    vb_secs, vb_trades = _vectorbt(close, args.repeats)
    rows.append(("vectorbt Portfolio.from_signals, SMA 10/30 crossover", min(vb_secs), statistics.median(vb_secs),
                 vb_trades))
    if not args.skip_backtesting:
        bt_secs, bt_trades = _backtesting(bars15)
        rows.append(("backtesting.py Backtest.run, SMA 10/30 crossover (1 run)", bt_secs, bt_secs, bt_trades))

    table = Table(title=f"Throughput on the same {n_bars:,} 15s bars ({args.sessions} sessions)")
    for col in ("engine", "best s", "median s", "bars/s (best)", "trades"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for name, best, med, trades in rows:
        table.add_row(name, f"{best:.3f}", f"{med:.3f}", f"{n_bars / best:,.0f}", f"{trades:,}")
    console.print(table)
    for line in notes:
        console.print(line)
    p4 = [n_bars / r[1] for r in rows if r[0].startswith("edgefinder")]
    console.print("Goal >= 1,000,000 bars/s: " + ", ".join(f"{v:,.0f} ({'met' if v >= 1e6 else 'NOT met'})" for v in p4))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
