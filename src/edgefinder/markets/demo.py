"""Futures part of ``edgefinder demo``: a small synthetic ATLAS through the pipeline.

Writes under ``settings.data_dir/demo/markets/`` (``atlas/`` and ``checkpoints/``), runs Phases
2, 2.5 and 3 with few Optuna trials, and prints a short summary. Phases 4–5 extend
:func:`run` through :func:`run_phases_4_5` (forward pass and strategy selection).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefinder.settings import Settings

__all__ = ["DEMO_SESSIONS", "DEMO_ITERATIONS", "DEMO_TIMEFRAMES", "demo_paths", "run", "run_phases_2_3"]

DEMO_SESSIONS = 40
DEMO_ITERATIONS = 10
DEMO_SEED = 7
#: a short hierarchy keeps the demo quick; the daily level would need ≥ 21 sessions of warm-up
DEMO_TIMEFRAMES = ["1h", "15m", "5m", "1m", "15s"]
#: the last quarter of the sessions is kept out-of-sample for Phases 4–5
DEMO_TRAIN_FRACTION = 0.75


def demo_paths(settings: Settings) -> tuple[Path, Path]:
    """(atlas_root, checkpoint_dir) of the demo."""
    base = Path(settings.data_dir) / "demo" / "markets"
    return base / "atlas", base / "checkpoints"


def _train_until(root: Path) -> str:
    from edgefinder.markets import atlas

    ts = atlas.read_bars(root, "1h")["timestamp"].to_numpy()
    days = sorted(set(atlas.session_ids(ts).astype(str)))
    return days[int(len(days) * DEMO_TRAIN_FRACTION)]


def run_phases_2_3(settings: Settings, console: Console) -> dict:
    """Synthesize the demo ATLAS (once) and run Phases 2–3; returns what the summary shows."""
    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.synth import SynthConfig, generate_atlas

    root, ckpt = demo_paths(settings)
    t0 = time.perf_counter()
    if not (root / "ground_truth.json").is_file():
        generate_atlas(root, SynthConfig(sessions=DEMO_SESSIONS, seed=DEMO_SEED, edge="planted"))
    t_synth = time.perf_counter() - t0
    train_until = _train_until(root)
    orch = Orchestrator(root, ckpt, iterations=DEMO_ITERATIONS, train_until=train_until,
                        timeframes=DEMO_TIMEFRAMES, seed=DEMO_SEED, dashboard=False,
                        console=Console(quiet=True))
    summary = orch.run()
    return {"orchestrator": orch, "summary": summary, "atlas": root, "checkpoints": ckpt,
            "train_until": train_until, "synth_seconds": t_synth}


def _print_summary(console: Console, info: dict) -> None:
    s = info["summary"]
    lib = info["orchestrator"].load_library()
    console.print(
        f"synthetic ATLAS: {DEMO_SESSIONS} sessions (planted edge), timeframes {', '.join(s.timeframes)}; "
        f"in-sample before {info['train_until']}"
    )
    per = ", ".join(f"{x['tf']} {x['patterns']}" for x in s.patterns_per_level)
    console.print(f"Phase 2: {s.patterns} patterns ({per}); Phase 2.5: {s.templates} templates; "
                  f"Phase 3: {s.library_templates} playbook entries, {s.fissions} fission(s)")
    top = sorted(lib.values(), key=lambda e: (-e["member_count"], e["template_id"]))[:5]
    t = Table(title="Playbook — the 5 largest templates (score = mean/std of member PnL, $ after costs)")
    for col in ("template", "tf", "type", "members", "stop/target/trail (ticks)", "max hold (s)",
                "train score", "val PnL $ (trades)"):
        t.add_column(col, justify="right" if col not in ("tf", "type") else "left")
    for e in top:
        p = e["params"]
        t.add_row(f"T-{e['template_id']}", e["timeframe"], e["pattern_type"], str(e["member_count"]),
                  f"{p['stop_loss_ticks']}/{p['take_profit_ticks']}/{p['trailing_stop_ticks']}",
                  str(p["max_hold_seconds"]), f"{e['train_score']:.2f}",
                  f"{e['val_pnl']:,.2f} ({e['val_trades']})")
    console.print(t)


def run_phases_4_5(settings: Settings, console: Console, info: dict) -> None:
    """Phases 4–5 of the demo: forward pass over every session (in-sample and out-of-sample apart),
    then strategy selection; prints the headline figures and the production playbook's status."""
    from edgefinder.markets.selection import PLAYBOOK_PKL, TIER_NAMES

    orch = info["orchestrator"]
    fwd = orch.run_forward_pass(day_lines=False)
    rep = fwd.report
    t = Table(title=f"Phase 4 — forward pass ({rep['entry_timeframe']} entries, "
                    f"{fwd.bars_per_second:,.0f} bars/s)")
    for col in ("sessions", "days", "trades", "win rate", "PnL $", "Sharpe/trade", "max DD $", "p (mean > 0)"):
        t.add_column(col, justify="left" if col == "sessions" else "right")
    for name, key in (("all", "all"), ("in-sample", "in_sample"), ("out-of-sample", "out_of_sample")):
        b = rep.get(key)
        if b is None:
            continue
        t.add_row(name, str(b["days"]), f"{b['total_trades']:,}", f"{b['win_rate']:.1%}",
                  f"{b['total_pnl']:,.2f}", f"{b['sharpe_per_trade']:.2f}", f"{b['max_drawdown']:,.2f}",
                  f"{b['p_value_mean_pnl_gt_0']:.3g}")
    console.print(t)
    sel = orch.run_strategy_selection()
    st = sel.stats
    tiers = ", ".join(f"{TIER_NAMES[k].split(' —')[0].title()}: {int((st['tier'] == k).sum())}"
                      for k in (1, 2, 3, 4, 0)) if not st.empty else "no templates"
    console.print(f"Phase 5: {tiers}; the q-gate (BH q <= 0.10 on out-of-sample trades) removed "
                  f"{sel.tier1_removed_by_q} Tier-1 template(s)")
    for tid, e in sorted(sel.production.items()):
        console.print(f"  production T-{tid}: {e['trades']} trades, Sharpe {e['sharpe']:.2f}, q {e['q_value']:.3f}, "
                      f"out-of-sample PnL ${e['oos_pnl']:,.2f}, risk {e['risk_score']:.2f}")
    console.print(f"Production playbook: {len(sel.production)} template(s) in "
                  f"{info['checkpoints'] / PLAYBOOK_PKL}, status pending_review — approve with "
                  f"`edgefinder markets approve-playbook --checkpoint-dir {info['checkpoints']}`")


def run(settings: Settings, console: Console) -> None:
    """The futures demo: small synthetic ATLAS → Phases 2–3 (→ 4–5) → short summary."""
    t0 = time.perf_counter()
    info = run_phases_2_3(settings, console)
    _print_summary(console, info)
    run_phases_4_5(settings, console, info)
    console.print(f"[dim]futures demo: {time.perf_counter() - t0:.1f} s; artifacts in {info['checkpoints']}[/dim]")
