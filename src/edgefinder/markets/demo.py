"""Futures part of ``edgefinder demo``: a synthetic market with a real edge, through the whole pipeline.

Writes under ``settings.data_dir/demo/markets/`` (``atlas/`` and ``checkpoints/``). The market is
``--edge context`` (overreaction only in the two hours after an hourly shock: fading every snap
loses after MNQ's costs, fading inside that regime earns; ``ground_truth.json`` states both), so
what the demo shows is the pipeline finding an edge that lives in a coarser timeframe's context. Sessions are split the way a user would:
Phases 2–3 learn from the first half, the forward pass (Phase 4) and strategy selection (Phase 5)
judge on the next quarter, and the last quarter is held back for ``markets paper-trade``, which
replays it with the frozen production playbook. Every phase runs at its defaults except the
Optuna trials (``DEMO_ITERATIONS``, to keep the demo short).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from edgefinder.settings import Settings

__all__ = ["DEMO_ITERATIONS", "DEMO_SESSIONS", "demo_paths", "run", "run_phases_2_3"]

DEMO_SESSIONS = 120
DEMO_ITERATIONS = 20
DEMO_SEED = 3
DEMO_EDGE: Literal["context"] = "context"
#: session indices: Phases 2–3 learn before ``TRAIN``, Phase 4–5 judge ``TRAIN..FORWARD``, paper trade after
DEMO_TRAIN_SESSIONS = 60
DEMO_FORWARD_SESSIONS = 90


def demo_paths(settings: Settings) -> tuple[Path, Path]:
    """(atlas_root, checkpoint_dir) of the demo."""
    base = Path(settings.data_dir) / "demo" / "markets"
    return base / "atlas", base / "checkpoints"


def _split_dates() -> tuple[str, str]:
    from edgefinder.markets.synth import SynthConfig, session_dates

    dates = session_dates(SynthConfig().start, DEMO_SESSIONS)
    return dates[DEMO_TRAIN_SESSIONS].isoformat(), dates[DEMO_FORWARD_SESSIONS].isoformat()


def run_phases_2_3(settings: Settings, console: Console) -> dict:
    """Synthesize the demo ATLAS (once) and run Phases 2–3; returns what the summary shows."""
    from edgefinder.markets.orchestrator import Orchestrator
    from edgefinder.markets.synth import SynthConfig, generate_atlas, load_ground_truth

    root, ckpt = demo_paths(settings)
    t0 = time.perf_counter()
    if (
        not (root / "ground_truth.json").is_file()
        or load_ground_truth(root).get("edge") != DEMO_EDGE
    ):
        generate_atlas(root, SynthConfig(sessions=DEMO_SESSIONS, seed=DEMO_SEED, edge=DEMO_EDGE))
    t_synth = time.perf_counter() - t0
    train_until, forward_until = _split_dates()
    orch = Orchestrator(
        root,
        ckpt,
        iterations=DEMO_ITERATIONS,
        train_until=train_until,
        seed=DEMO_SEED,
        dashboard=False,
        console=Console(file=io.StringIO()),
    )
    summary = orch.run()
    return {
        "orchestrator": orch,
        "summary": summary,
        "atlas": root,
        "checkpoints": ckpt,
        "train_until": train_until,
        "forward_until": forward_until,
        "synth_seconds": t_synth,
        "truth": load_ground_truth(root),
    }


def _print_summary(console: Console, info: dict) -> None:
    s = info["summary"]
    truth = info["truth"]
    fade, inside = truth.get("naive_fade", {}), truth.get("naive_fade_inside", {})
    console.print(
        f"synthetic ATLAS: {DEMO_SESSIONS} sessions where overreaction lives only in the 2 hours after "
        f"an hourly shock ({truth.get('context_time_fraction', float('nan')):.0%} of the time): a naive "
        f"fade of every 15s ROCHE snap nets {fade.get('mean_points', float('nan')):+.2f} points a trade "
        f"after costs, inside that regime {inside.get('mean_points', float('nan')):+.2f} "
        f"(t = {inside.get('t', float('nan')):.1f}); timeframes {', '.join(s.timeframes)}",
        soft_wrap=True,
    )
    console.print(
        f"sessions: Phases 2–3 learn before {info['train_until']}, Phases 4–5 judge "
        f"{info['train_until']}..{info['forward_until']}, paper trade from {info['forward_until']}"
    )
    per = ", ".join(f"{x['tf']} {x['patterns']:,}" for x in s.patterns_per_level)
    console.print(
        f"Phase 2: {s.patterns:,} patterns ({per}); Phase 2.5: {s.templates} templates; "
        f"Phase 3: {s.library_templates} playbook entries, {s.fissions} fission(s)",
        soft_wrap=True,
    )


def run_phases_4_5(settings: Settings, console: Console, info: dict) -> dict:
    """Forward pass (in-sample and out-of-sample apart), strategy selection, and the paper trade on the
    held-back sessions; prints the headline figures."""
    from edgefinder.markets.summary import money, power_text

    orch = info["orchestrator"]
    fwd = orch.run_forward_pass(day_lines=False, forward_until=info["forward_until"])
    rep = fwd.report
    t = Table(
        title=f"Phase 4 — forward pass ({rep['entry_timeframe']} entries, {rep['cascade']} cascade)"
    )
    for col in ("sessions", "days", "trades", "win rate", "PnL $", "mean $/trade", "p (mean > 0)"):
        t.add_column(col, justify="left" if col == "sessions" else "right")
    for name, key in (("in-sample", "in_sample"), ("out-of-sample", "out_of_sample")):
        b = rep.get(key)
        if b is not None:
            t.add_row(
                name,
                str(b["days"]),
                f"{b['total_trades']:,}",
                f"{b['win_rate']:.1%}",
                f"{b['total_pnl']:,.2f}",
                f"{b['mean_pnl_per_trade']:+.2f}",
                f"{b['p_value_mean_pnl_gt_0']:.2g}",
            )
    console.print(t)
    sel = orch.run_strategy_selection()
    fam = sel.families
    console.print(
        f"Phase 5: {int(fam['qualifies'].sum()) if len(fam) else 0} of "
        f"{int(fam['tested'].sum()) if len(fam) else 0} families qualify on out-of-sample expectancy; "
        f"production playbook: {len(sel.production)} templates (status pending_review)",
        soft_wrap=True,
    )
    for _, r in fam[fam["qualifies"]].iterrows() if len(fam) else []:
        console.print(
            f"  {r['family']}: {r['trades']:,} trades, {money(r['mean_pnl'])}/trade "
            f"[{money(r['ci_low'])}, {money(r['ci_high'])}], q {r['q_value']:.2g}",
            soft_wrap=True,
        )
    _print_context_found(console, sel)
    paper = None
    if sel.production:
        from edgefinder.markets.paper_trade import run_paper_trade

        paper = run_paper_trade(
            info["checkpoints"], info["atlas"], info["forward_until"], allow_pending=True
        ).report
        console.print(
            f"Paper trade on {paper['sessions']} held-back sessions ({paper['from']}..{paper['to']}; the "
            f"demo passes --allow-pending, a person approves a real playbook first): "
            f"{paper['total_trades']:,} trades, {money(paper['total_pnl'])} "
            f"({money(paper['mean_pnl_per_trade'])}/trade, p {paper['p_value_mean_pnl_gt_0']:.2g})",
            soft_wrap=True,
        )
        console.print(f"  {power_text({**paper, 'power': paper['power']})}", soft_wrap=True)
    else:
        console.print("No family qualified, so there is nothing to paper-trade.")
    console.print(
        f"Approve the playbook with `edgefinder markets approve-playbook --checkpoint-dir "
        f"{info['checkpoints']}`",
        soft_wrap=True,
    )
    return {"forward": fwd, "selection": sel, "paper": paper}


def _print_context_found(console: Console, sel: Any) -> None:
    """The context the selection found: the meta-label gate's states and the strongest context rows of
    the ancestry analysis."""
    from edgefinder.markets.summary import money

    if sel.meta:
        states = "; ".join(
            f"{c['state']} {c['gated_share']:.0%} vs {c['rest_share']:.0%}"
            for c in sel.meta["context"]
        )
        console.print(
            f"Context found: the meta-label gate (purged CV AUC {sel.meta['cv']['auc']:.2f}) passes "
            f"{sel.meta['oos_gated']:,} of {sel.meta['oos_candidates']:,} out-of-sample trades; their "
            f"context against the rest: {states}",
            soft_wrap=True,
        )
    anc = sel.ancestry_tests
    if len(anc):
        ctx = anc[anc["comparison"].str.endswith(" vs rest") & (anc["q_value"] <= 0.10)]
        for _, r in ctx.sort_values("p_value").head(3).iterrows():
            console.print(
                f"  {r['pattern_type']} {r['comparison']}: {money(r['difference'])}/trade "
                f"[{money(r['ci_low'])}, {money(r['ci_high'])}], q {r['q_value']:.2g}",
                soft_wrap=True,
            )


def run(settings: Settings, console: Console) -> dict:
    """The futures demo: synthetic ATLAS → Phases 2–5 → paper trade → short summary."""
    t0 = time.perf_counter()
    info = run_phases_2_3(settings, console)
    _print_summary(console, info)
    out = run_phases_4_5(settings, console, info)
    console.print(
        f"[dim]futures demo: {time.perf_counter() - t0:.1f} s; artifacts in {info['checkpoints']}[/dim]"
    )
    return {**info, **out}
