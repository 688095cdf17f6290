"""`edgefinder markets …` commands: synth, atlas build, run, approve-playbook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

markets_app = typer.Typer(
    help="Futures research: synthetic markets, ATLAS, discovery → playbook → forward pass → selection.",
    no_args_is_help=True,
)
atlas_app = typer.Typer(help="Build and inspect the multi-timeframe ATLAS store.", no_args_is_help=True)
markets_app.add_typer(atlas_app, name="atlas")


# ---------------------------------------------------------------------------------------------
# `markets run` — Phases 2, 2.5, 3 (owner: M3). Phases 4–5 flags (--forward-pass,
# --strategy-report) are added below the Phase 2–3 block by the forward-pass owner.
# ---------------------------------------------------------------------------------------------


@markets_app.command("run")
def run_cmd(
    data: Annotated[Path, typer.Option("--data", help="ATLAS root directory ({tf}/YYYY_MM.parquet).")],
    checkpoint_dir: Annotated[
        Path, typer.Option("--checkpoint-dir", help="Where manifest, templates, scaler and playbook go.")
    ] = Path("checkpoints"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete existing checkpoints and start over.")] = False,
    no_dashboard: Annotated[
        bool, typer.Option("--no-dashboard", help="Plain progress bars instead of the live dashboard.")
    ] = False,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, help="Optuna trials per template in Phase 3.")
    ] = 50,
    train_until: Annotated[
        Optional[str],
        typer.Option("--train-until", help="Use only data before this date (YYYY-MM-DD: the CME session "
                     "ending that day and later are out-of-sample)."),
    ] = None,
    timeframes: Annotated[
        Optional[str],
        typer.Option("--timeframes", help="Comma list restricting the hierarchy, e.g. 5m,1m,15s "
                     "(default: every timeframe in the ATLAS)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for clustering, Optuna and fission.")] = 0,
) -> None:
    """Run discovery (Phase 2), clustering (2.5) and the playbook search (3), with checkpoints.

    A rerun resumes from the checkpoints whose inputs did not change.
    """
    from rich.console import Console

    from edgefinder.markets.orchestrator import Orchestrator, print_run_summary

    console = Console()
    orch = Orchestrator(
        data_dir=data, checkpoint_dir=checkpoint_dir, iterations=iterations, train_until=train_until,
        timeframes=timeframes, seed=seed, dashboard=not no_dashboard, console=console,
    )
    # --- Phases 2, 2.5, 3 ---
    summary = orch.run(fresh=fresh)
    print_run_summary(console, summary)
    # --- Phases 4–5 hook point (forward pass / strategy report) ---
