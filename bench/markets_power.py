"""Benchmark: does the futures pipeline tell a real edge from noise at its defaults? The power table.

    .venv/bin/python bench/markets_power.py [--seeds 0,1,2,3,4] [--workers 2]

For each seed and each market — ``planted`` (``--edge reverting``: a martingale plus a mean-reverting
component; a naive fade of 15s ROCHE snaps earns after MNQ's costs, see its ground truth),
``context`` (``--edge context``: the same overreaction only in the two hours after an hourly shock;
the naive fade loses overall and earns inside; the table shows both) and ``none`` (a martingale:
every strategy loses its costs) — one user's run at the defaults on 120 sessions: Phases
2–3 learn from sessions 1–60, the forward pass and strategy selection judge sessions 61–90
(out-of-sample), and sessions 91–120 are held back for ``markets paper-trade`` with the approved,
frozen production playbook. Printed per run: out-of-sample trades and mean PnL per trade, the smallest
mean the out-of-sample test detects at 80 % power, the families that qualified, the production size,
and the paper trade's trades and PnL; then seconds, peak memory and the load average. Never asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SESSIONS, TRAIN, FORWARD = 120, 60, 90


def _run(root: str, edge: str, seed: int) -> dict:
    from rich.console import Console

    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.paper_trade import run_paper_trade
    from edgefinder.markets.selection import approve_playbook
    from edgefinder.markets.synth import SynthConfig, generate_atlas, session_dates

    t0 = time.perf_counter()
    data, ck = Path(root) / "atlas", Path(root) / "ck"
    generate_atlas(data, SynthConfig(sessions=SESSIONS, seed=seed, edge=edge))  # type: ignore[arg-type]
    dates = session_dates(SynthConfig().start, SESSIONS)
    orch = Orchestrator(
        data,
        ck,
        train_until=dates[TRAIN].isoformat(),
        seed=seed,
        dashboard=False,
        console=Console(file=io.StringIO()),
    )
    orch.run()
    fwd = orch.run_forward_pass(day_lines=False, forward_until=dates[FORWARD].isoformat())
    sel = orch.run_strategy_selection()
    paper = None
    if sel.production:
        approve_playbook(ck, "bench")
        paper = run_paper_trade(ck, data, dates[FORWARD].isoformat()).report
    truth = json.loads((data / "ground_truth.json").read_text())
    fade = truth["naive_fade"]
    fade["inside"] = truth.get("naive_fade_inside", {}).get("mean_points")
    fam = sel.families
    return {
        "edge": edge,
        "seed": seed,
        "oos": fwd.report["out_of_sample"],
        "production": len(sel.production),
        "meta_gated": sel.meta.get("oos_gated"),
        "families": f"{int(fam['qualifies'].sum()) if len(fam) else 0}/{int(fam['tested'].sum()) if len(fam) else 0}",
        "paper": paper,
        "fade": fade,
        "seconds": time.perf_counter() - t0,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markets", default="reverting,context,none")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn")) as pool,
    ):
        jobs = [
            pool.submit(_run, str(Path(tmp) / f"{e}{s}"), e, s)
            for s in seeds
            for e in args.markets.split(",")
        ]
        runs = [j.result() for j in jobs]
    wall = time.perf_counter() - t0
    table = Table(
        title=f"The pipeline at its defaults: {SESSIONS} sessions (learn 1–{TRAIN}, judge "
        f"{TRAIN + 1}–{FORWARD}, paper trade {FORWARD + 1}–{SESSIONS})"
    )
    for col in (
        "seed",
        "market",
        "naive fade pts/trade",
        "OOS trades",
        "OOS $/trade",
        "p",
        "detectable $/trade",
        "meta-gated OOS",
        "families ok/tested",
        "production",
        "paper trades",
        "paper PnL $",
        "paper $/trade",
    ):
        table.add_column(col, justify="left" if col in ("market",) else "right")
    for r in runs:
        o, p = r["oos"], r["paper"]
        table.add_row(
            str(r["seed"]),
            {"reverting": "planted"}.get(r["edge"], r["edge"]),
            f"{r['fade']['mean_points']:+.2f}"
            + ("" if r["fade"]["inside"] is None else f" (inside {r['fade']['inside']:+.2f})"),
            f"{o['total_trades']:,}",
            f"{o['mean_pnl_per_trade']:+.2f}",
            f"{o['p_value_mean_pnl_gt_0']:.2g}",
            f"{o['power']['minimum_detectable']:.2f}",
            "—" if r["meta_gated"] is None else f"{r['meta_gated']:,}",
            r["families"],
            str(r["production"]),
            "—" if p is None else f"{p['total_trades']:,}",
            "—" if p is None else f"{p['total_pnl']:+,.0f}",
            "—" if p is None else f"{p['mean_pnl_per_trade']:+.2f}",
        )
    console = Console(width=200)
    console.print(table)
    planted = [r for r in runs if r["edge"] == "reverting"]
    none = [r for r in runs if r["edge"] == "none"]
    context = [r for r in runs if r["edge"] == "context"]
    console.print(
        f"planted: production non-empty and paper trade positive in "
        f"{sum(1 for r in planted if r['production'] and r['paper']['total_pnl'] > 0)}/{len(planted)} seeds; "
        f"context: {sum(1 for r in context if r['production'] and r['paper']['total_pnl'] > 0)}/{len(context)}; "
        f"none: >= 200 out-of-sample trades and empty production in "
        f"{sum(1 for r in none if r['oos']['total_trades'] >= 200 and not r['production'])}/{len(none)} seeds"
    )
    console.print(
        f"{len(runs)} runs in {wall:.0f} s wall on {args.workers} workers (per run "
        f"{min(r['seconds'] for r in runs):.0f}–{max(r['seconds'] for r in runs):.0f} s), peak RSS per "
        f"worker {max(r['peak_mb'] for r in runs):,.0f} MB, load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
