"""`edgefinder markets …` commands: synth, atlas build, run, approve-playbook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import click
import typer

markets_app = typer.Typer(
    help="Futures research: synthetic markets, ATLAS, discovery → playbook → forward pass → selection.",
    no_args_is_help=True,
)
atlas_app = typer.Typer(help="Build and inspect the multi-timeframe ATLAS store.", no_args_is_help=True)
markets_app.add_typer(atlas_app, name="atlas")


# ---------------------------------------------------------------------------------------------
# `markets synth` and `markets atlas build` — data (owner: M1)
# ---------------------------------------------------------------------------------------------


def _progress_bar(console):  # noqa: ANN001, ANN202 - rich types stay local to the commands
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, transient=True)


@markets_app.command("synth")
def synth_cmd(
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="CME sessions (weekdays) to generate.")] = 250,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives identical files.")] = 0,
    out: Annotated[Path, typer.Option("--out", help="ATLAS root to write ({tf}/YYYY_MM.parquet).")] = Path(
        "DATA/ATLAS"),
    edge: Annotated[str, typer.Option("--edge", help="none (martingale) or planted (documented reversion).")] = "none",
    base: Annotated[str, typer.Option("--base", help="Base bar: 15s, 5s or 1s.")] = "15s",
    start: Annotated[str, typer.Option("--start", help="First session date (YYYY-MM-DD; weekends skipped).")] = (
        "2024-01-01"),
) -> None:
    """Generate an NQ-like synthetic market (all timeframes base..1D) plus ground_truth.json."""
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    from edgefinder.markets.synth import SynthConfig, SynthError, generate_atlas

    try:
        start_date = dt.date.fromisoformat(start)
    except ValueError:
        raise SynthError(f"--start must be a date YYYY-MM-DD, got {start!r}") from None
    if edge not in ("none", "planted"):
        raise SynthError(f"--edge must be 'none' or 'planted', got {edge!r}")
    if base not in ("15s", "5s", "1s"):
        raise SynthError(f"--base must be 15s, 5s or 1s, got {base!r}")
    console = Console()
    cfg = SynthConfig(sessions=sessions, seed=seed, edge=edge, base=base, start=start_date)  # type: ignore[arg-type]
    with _progress_bar(console) as progress:
        task = progress.add_task("synth", total=1)

        def step(stage: str, done: int, total: int) -> None:
            progress.update(task, description=f"synth {stage}", completed=done, total=total)

        res = generate_atlas(out, cfg, progress=step)
    table = Table(title=f"synthetic ATLAS {out} ({edge}, seed {seed})")
    table.add_column("timeframe")
    table.add_column("bars", justify="right")
    for tf, n in res.bars.items():
        table.add_row(tf, f"{n:,}")
    console.print(table)
    console.print(f"{res.sessions} sessions, {res.triggers} planted triggers, {res.seconds:.1f} s; "
                  f"ground truth: {out / 'ground_truth.json'}")


@atlas_app.command("build")
def atlas_build_cmd(
    source: Annotated[list[Path], typer.Option("--source", help="Ticks or bars: CSV or Parquet (timestamp, price or "
                                               "open/high/low/close, volume) or Databento DBN (.dbn, .dbn.zst; trades "
                                               "or ohlcv-1s/1m/1h/1d). Repeat it, or give a directory, for several "
                                               "files of one instrument.")],
    out: Annotated[Path, typer.Option("--out", help="ATLAS root directory to write.")],
    tz: Annotated[Optional[str], typer.Option("--tz", help="Time zone of naive (local) timestamps, e.g. "
                                              "America/Chicago; default UTC.")] = None,
    timeframes: Annotated[Optional[str], typer.Option("--timeframes", help="Comma list, e.g. 15s,1m,5m "
                                                      "(default: every timeframe the source supports).")] = None,
) -> None:
    """Import ticks/bars files into the ATLAS: resample to each timeframe, one file per month."""
    from rich.console import Console
    from rich.table import Table

    from edgefinder.markets.atlas import build_atlas, source_files

    console = Console()
    names = ", ".join(p.name for p in source_files(source))
    with _progress_bar(console) as progress:
        task = progress.add_task(f"reading {names}", total=None)

        def step(tf: str, done: int, total: int) -> None:
            progress.update(task, description=f"built {tf}", completed=done, total=total)

        summary = build_atlas(source, out, tz=tz, timeframes=timeframes, progress=step)
    table = Table(title=f"ATLAS {out} from {names}")
    for col in ("timeframe", "bars", "files", "first (UTC)", "last (UTC)"):
        table.add_column(col, justify="right" if col in ("bars", "files") else "left")
    for row in summary.itertuples(index=False):
        table.add_row(row.timeframe, f"{row.bars:,}", str(row.files),
                      str(row.first)[:19] if row.first is not None else "-",
                      str(row.last)[:19] if row.last is not None else "-")
    console.print(table)


# ---------------------------------------------------------------------------------------------
# `markets run` — Phases 2, 2.5, 3 (owner: M3). Phases 4–5 flags (--forward-pass,
# --strategy-report) are added below the Phase 2–3 block by the forward-pass owner.
# ---------------------------------------------------------------------------------------------


@markets_app.command("run")
def run_cmd(
    data: Annotated[
        Optional[Path], typer.Option("--data", help="ATLAS root directory ({tf}/YYYY_MM.parquet); "
                                     "required except for --strategy-report alone.")
    ] = None,
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
    # Physics thresholds (Phase 2; recorded in state.json, reused and checked by the forward pass).
    # Open lower bounds: the same rules as the Settings fields (gt=0; coherence in (0, 1]).
    snap_z: Annotated[
        Optional[float], typer.Option("--snap-z", click_type=click.FloatRange(0.0, min_open=True),
                                      help="ROCHE_SNAP: |z| above this, in sigmas [env EDGEFINDER_SNAP_Z, 2.0].")
    ] = None,
    snap_velocity: Annotated[
        Optional[float], typer.Option("--snap-velocity", click_type=click.FloatRange(0.0, min_open=True),
                                      help="ROCHE_SNAP: |velocity| above this, in points per bar "
                                      "[env EDGEFINDER_SNAP_VELOCITY, 0.5].")
    ] = None,
    drive_momentum: Annotated[
        Optional[float], typer.Option("--drive-momentum", click_type=click.FloatRange(0.0, min_open=True),
                                      help="STRUCTURAL_DRIVE: |momentum| above this "
                                      "[env EDGEFINDER_DRIVE_MOMENTUM, 5.0].")
    ] = None,
    drive_coherence: Annotated[
        Optional[float], typer.Option("--drive-coherence", click_type=click.FloatRange(0.0, 1.0, min_open=True),
                                      help="STRUCTURAL_DRIVE: coherence below this, in (0, 1] "
                                      "[env EDGEFINDER_DRIVE_COHERENCE, 0.3].")
    ] = None,
    # --- Phases 4–5 (owner: M4) ---
    forward_pass: Annotated[
        bool, typer.Option("--forward-pass", help="Phase 4: replay every session with the playbook "
                           "(without --fresh: on the existing playbook, Phases 2–3 skipped).")
    ] = False,
    strategy_report: Annotated[
        bool, typer.Option("--strategy-report", help="Phase 5: tiers, risk scores and the production "
                           "playbook from the forward pass's brain (alone: on existing brain data).")
    ] = False,
    match_distance: Annotated[
        Optional[float], typer.Option("--match-distance", min=0.0, help="Gate 1: max scaled 11D distance to the "
                            "nearest template centroid [env EDGEFINDER_MATCH_DISTANCE, 3.0].")
    ] = None,
    min_prob: Annotated[
        Optional[float], typer.Option("--min-prob", min=0.0, max=1.0, help="Gate 2: brain probability needed "
                            "(exploration default 0.05; an unseen template has 0.09) [env EDGEFINDER_MIN_PROB].")
    ] = None,
    min_conf: Annotated[
        Optional[float], typer.Option("--min-conf", min=0.0, max=1.0, help="Gate 2: brain confidence needed "
                            "[env EDGEFINDER_MIN_CONF, 0.0].")
    ] = None,
    q_max: Annotated[
        Optional[float], typer.Option("--q-max", min=0.0, max=1.0, help="Phase 5: BH q-value a Tier-1 template "
                            "needs to enter the production playbook [env EDGEFINDER_Q_MAX, 0.10].")
    ] = None,
) -> None:
    """Run discovery (Phase 2), clustering (2.5) and the playbook search (3), with checkpoints;
    then, on request, the forward pass (Phase 4) and strategy selection (Phase 5).

    A rerun resumes from the checkpoints whose inputs did not change. The seed's three uses:
    `--fresh --forward-pass --strategy-report` (full pipeline), `--forward-pass --strategy-report`
    (forward pass and report on the existing playbook), `--strategy-report` (report alone).
    """
    from rich.console import Console

    from edgefinder.markets.orchestrator import Orchestrator, PipelineError, print_run_summary

    from edgefinder.markets.physics import THRESHOLDS, PhysicsConfig
    from edgefinder.settings import get_settings

    settings = get_settings()
    flags = {"snap_z": snap_z, "snap_velocity": snap_velocity, "drive_momentum": drive_momentum,
             "drive_coherence": drive_coherence}
    physics = PhysicsConfig.from_settings(settings, **flags)
    # What the user asked for explicitly (flag, EDGEFINDER_* or .env): a forward pass on an existing
    # playbook takes the others from state.json and refuses these if they differ from it.
    physics_asked = {k: getattr(physics, k) for k in THRESHOLDS
                     if flags[k] is not None or k in settings.model_fields_set}
    match_distance = settings.match_distance if match_distance is None else match_distance
    min_prob = settings.min_prob if min_prob is None else min_prob
    min_conf = settings.min_conf if min_conf is None else min_conf
    q_max = settings.q_max if q_max is None else q_max
    report_only = strategy_report and not (forward_pass or fresh)
    if data is None and not report_only:
        raise PipelineError("--data DIR (the ATLAS root) is required, except for --strategy-report alone")
    console = Console()
    orch = Orchestrator(
        data_dir=data if data is not None else Path("."), checkpoint_dir=checkpoint_dir,
        iterations=iterations, train_until=train_until, timeframes=timeframes, seed=seed, dashboard=not no_dashboard, console=console,
        physics=physics,
    )
    # --- Phases 2, 2.5, 3 --- (skipped when only Phases 4–5 are asked for on existing checkpoints)
    if fresh or not (forward_pass or strategy_report):
        summary = orch.run(fresh=fresh)
        print_run_summary(console, summary)
    # --- Phases 4–5 (forward pass / strategy report) ---
    if forward_pass:
        from edgefinder.markets.forward import ForwardConfig

        orch.run_forward_pass(ForwardConfig(match_distance=match_distance, min_prob=min_prob,
                                            min_conf=min_conf, instrument=orch.instrument.symbol),
                              fresh=fresh, physics=physics_asked)
    if strategy_report:
        from edgefinder.markets.selection import SelectionConfig

        orch.run_strategy_selection(SelectionConfig(q_max=q_max))


@markets_app.command("approve-playbook")
def approve_playbook_cmd(
    checkpoint_dir: Annotated[
        Path, typer.Option("--checkpoint-dir", help="Directory holding production_playbook.pkl/.json.")
    ] = Path("checkpoints"),
    reviewer: Annotated[
        Optional[str], typer.Option("--reviewer", help="Name of the person approving (recorded in the JSON).")
    ] = None,
) -> None:
    """Human review step: mark the production playbook `approved` (it is written `pending_review`)."""
    from rich.console import Console

    from edgefinder.markets.selection import approve_playbook

    doc = approve_playbook(checkpoint_dir, reviewer)
    Console().print(f"production playbook in {checkpoint_dir}: {len(doc.get('templates', {}))} templates, "
                    f"status [bold]{doc['status']}[/bold] (reviewer {doc['reviewer']}, {doc['reviewed_at']})")
