"""`edgefinder markets …` commands: synth, atlas build, run, approve-playbook, paper-trade."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer

from edgefinder.dates import DATE, MOMENT

if TYPE_CHECKING:  # the commands import the pipeline lazily, so that `--help` stays fast
    from rich.console import Console as RichConsole
    from rich.progress import Progress

    from edgefinder.markets.forward import ForwardResult
    from edgefinder.markets.orchestrator import RunSummary
    from edgefinder.markets.selection import SelectionResult

_T = TypeVar("_T")

markets_app = typer.Typer(
    help="Futures research: synthetic markets, ATLAS, discovery → playbook → forward pass → selection.",
    no_args_is_help=True,
)
atlas_app = typer.Typer(
    help="Build and inspect the multi-timeframe ATLAS store.", no_args_is_help=True
)
markets_app.add_typer(atlas_app, name="atlas")


# ---------------------------------------------------------------------------------------------
# `markets synth` and `markets atlas build` — data
# ---------------------------------------------------------------------------------------------


def _default(name: str) -> Any:
    from edgefinder.settings import setting_default

    return setting_default(name)


def _env(name: str) -> str:
    """``[env EDGEFINDER_X, default D]`` for a flag's help, from the settings (written once there)."""
    return f"[env EDGEFINDER_{name.upper()}, default {_default(name)}]"


def _progress_bar(console: RichConsole) -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@markets_app.command("synth")
def synth_cmd(
    sessions: Annotated[
        int, typer.Option("--sessions", min=1, help="CME sessions (weekdays) to generate.")
    ] = 250,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives identical files.")
    ] = 0,
    out: Annotated[
        Path, typer.Option("--out", help="ATLAS root to write ({tf}/YYYY_MM.parquet).")
    ] = Path("DATA/ATLAS"),
    edge: Annotated[
        str,
        typer.Option(
            "--edge",
            help="none (martingale), planted (rare spike reversion), "
            "reverting (a mean-reverting price component) or context (the same component only "
            "in the two hours after an hourly shock); see ground_truth.json.",
        ),
    ] = "none",
    base: Annotated[str, typer.Option("--base", help="Base bar: 15s, 5s or 1s.")] = "15s",
    start: Annotated[
        _dt.date,
        typer.Option(
            "--start", click_type=DATE, help="First session date (YYYY-MM-DD; weekends skipped)."
        ),
    ] = _dt.date(2024, 1, 1),
) -> None:
    """Generate an NQ-like synthetic market (all timeframes base..1D) plus ground_truth.json."""
    from rich.table import Table

    from edgefinder.console import Console
    from edgefinder.markets.synth import EDGES, SynthConfig, SynthError, generate_atlas

    if edge not in EDGES:
        raise SynthError(f"--edge must be one of {', '.join(EDGES)}, got {edge!r}")
    if base not in ("15s", "5s", "1s"):
        raise SynthError(f"--base must be 15s, 5s or 1s, got {base!r}")
    console = Console()
    cfg = SynthConfig(sessions=sessions, seed=seed, edge=edge, base=base, start=start)  # type: ignore[arg-type]
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
    console.print(
        f"{res.sessions} sessions, {res.triggers} planted triggers, {res.seconds:.1f} s; "
        f"ground truth: {out / 'ground_truth.json'}"
    )
    from edgefinder.markets.synth import load_ground_truth

    fade = load_ground_truth(out).get("naive_fade")
    if fade:
        console.print(
            f"naive fade of every 15s ROCHE_SNAP, {fade['hold_bars']} bars, after {fade['instrument']} costs "
            f"({fade['cost_points']:.2f} points a round trip): {fade['mean_points']:+.2f} points "
            f"(${fade['mean_dollars']:+.2f}) a trade, t = {fade['t']:.1f}, {fade['n']:,} trades"
        )


@atlas_app.command("build")
def atlas_build_cmd(
    source: Annotated[
        list[Path],
        typer.Option(
            "--source",
            help="Ticks or bars: CSV or Parquet (timestamp, price or "
            "open/high/low/close, volume) or Databento DBN (.dbn, .dbn.zst; trades "
            "or ohlcv-1s/1m/1h/1d). Repeat it, or give a directory, for several "
            "files of one instrument.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="ATLAS root directory to write.")],
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz", help="Time zone of naive (local) timestamps, e.g. America/Chicago; default UTC."
        ),
    ] = None,
    timeframes: Annotated[
        str | None,
        typer.Option(
            "--timeframes",
            help="Comma list, e.g. 15s,1m,5m (default: every timeframe the source supports).",
        ),
    ] = None,
) -> None:
    """Import ticks/bars files into the ATLAS: resample to each timeframe, one file per month."""
    from rich.table import Table

    from edgefinder.console import Console
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
        table.add_row(
            str(row.timeframe),
            f"{row.bars:,}",
            str(row.files),
            str(row.first)[:19] if row.first is not None else "-",
            str(row.last)[:19] if row.last is not None else "-",
        )
    console.print(table)


# ---------------------------------------------------------------------------------------------
# `markets run` — Phases 2, 2.5, 3, and on request 4 and 5
# ---------------------------------------------------------------------------------------------


def _instrument_option() -> Any:
    return typer.Option(
        "--instrument",
        help="Futures contract whose tick value and costs price the trades: "
        "MNQ, NQ, MES or ES (docs/markets.md: adding one). Default: the one the "
        "checkpoints were built with, else MNQ.",
    )


@markets_app.command("run")
def run_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="ATLAS root directory ({tf}/YYYY_MM.parquet); "
            "required except for --strategy-report alone.",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        Path,
        typer.Option("--checkpoint-dir", help="Where manifest, templates, scaler and playbook go."),
    ] = _default("checkpoint_dir"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete existing checkpoints and start over.")
    ] = False,
    no_dashboard: Annotated[
        bool,
        typer.Option("--no-dashboard", help="Plain progress bars instead of the live dashboard."),
    ] = False,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, help="Optuna trials per template in Phase 3.")
    ] = 50,
    train_until: Annotated[
        _dt.date | None,
        typer.Option(
            "--train-until",
            click_type=MOMENT,
            help="Phases 2–3 use only sessions before this date (YYYY-MM-DD: the CME "
            "session ending that day and later are out-of-sample for Phases 4–5).",
        ),
    ] = None,
    forward_until: Annotated[
        _dt.date | None,
        typer.Option(
            "--forward-until",
            click_type=MOMENT,
            help="Phase 4 replays only sessions before this date; the rest are held "
            "back for `markets paper-trade` (default: none held back; needs --forward-pass).",
        ),
    ] = None,
    instrument: Annotated[str | None, _instrument_option()] = None,
    timeframes: Annotated[
        str | None,
        typer.Option(
            "--timeframes",
            help="Comma list restricting the hierarchy, e.g. 5m,1m,15s "
            "(default: every timeframe in the ATLAS).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for clustering, Optuna and fission.")
    ] = 0,
    cascade: Annotated[
        str | None,
        typer.Option(
            "--cascade",
            help="Phase 2: context (every timeframe scanned, ancestry "
            f"measured) or strict (the top-down funnel) {_env('cascade')}.",
        ),
    ] = None,
    max_templates: Annotated[
        int | None,
        typer.Option(
            "--max-templates",
            min=1,
            help=f"Phase 2.5: cap on the coarse cluster count {_env('max_templates')}.",
        ),
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option(
            "--sampler",
            help="Phase 3: Optuna sampler, qmc (a template's trials in one "
            f"simulator call) or tpe {_env('sampler')}.",
        ),
    ] = None,
    # Physics thresholds (Phase 2; recorded in state.json, reused and checked by the forward pass).
    # Open lower bounds: the same rules as the Settings fields (gt=0; coherence in (0, 1]).
    snap_z: Annotated[
        float | None,
        typer.Option(
            "--snap-z",
            click_type=click.FloatRange(0.0, min_open=True),
            help=f"ROCHE_SNAP: |z| above this, in sigmas {_env('snap_z')}.",
        ),
    ] = None,
    snap_velocity: Annotated[
        float | None,
        typer.Option(
            "--snap-velocity",
            click_type=click.FloatRange(0.0, min_open=True),
            help=f"ROCHE_SNAP: |velocity| above this, in points per bar {_env('snap_velocity')}.",
        ),
    ] = None,
    drive_momentum: Annotated[
        float | None,
        typer.Option(
            "--drive-momentum",
            click_type=click.FloatRange(0.0, min_open=True),
            help=f"STRUCTURAL_DRIVE: |momentum| above this {_env('drive_momentum')}.",
        ),
    ] = None,
    drive_coherence: Annotated[
        float | None,
        typer.Option(
            "--drive-coherence",
            click_type=click.FloatRange(0.0, 1.0, min_open=True),
            help=f"STRUCTURAL_DRIVE: coherence below this, in (0, 1] {_env('drive_coherence')}.",
        ),
    ] = None,
    forward_pass: Annotated[
        bool,
        typer.Option(
            "--forward-pass",
            help="Phase 4: replay every session with the playbook "
            "(without --fresh: on the existing playbook, Phases 2–3 skipped).",
        ),
    ] = False,
    strategy_report: Annotated[
        bool,
        typer.Option(
            "--strategy-report",
            help="Phase 5: tiers, risk scores and the production "
            "playbook from the forward pass's brain (alone: on existing brain data).",
        ),
    ] = False,
    match_distance: Annotated[
        float | None,
        typer.Option(
            "--match-distance",
            min=0.0,
            help="Gate 1: max scaled 11D distance to the "
            f"nearest template centroid {_env('match_distance')}.",
        ),
    ] = None,
    min_depth: Annotated[
        int | None,
        typer.Option(
            "--min-depth",
            min=0,
            help="Gate 1: chain length an entry needs (the number "
            f"of timeframes above the entry = the full cascade) {_env('min_depth')}.",
        ),
    ] = None,
    min_prob: Annotated[
        float | None,
        typer.Option(
            "--min-prob",
            min=0.0,
            max=1.0,
            help="Gate 2: brain probability needed "
            f"(an unseen template has 0.09) {_env('min_prob')}.",
        ),
    ] = None,
    min_conf: Annotated[
        float | None,
        typer.Option(
            "--min-conf",
            min=0.0,
            max=1.0,
            help=f"Gate 2: brain confidence needed {_env('min_conf')}.",
        ),
    ] = None,
    q_max: Annotated[
        float | None,
        typer.Option(
            "--q-max",
            min=0.0,
            max=1.0,
            help=f"Phase 5: BH q-value a family needs for production {_env('q_max')}.",
        ),
    ] = None,
    dsr_min: Annotated[
        float | None,
        typer.Option(
            "--dsr-min",
            min=0.0,
            max=1.0,
            help=f"Phase 5: deflated Sharpe a family needs for production {_env('dsr_min')}.",
        ),
    ] = None,
    min_family_trades: Annotated[
        int | None,
        typer.Option(
            "--min-family-trades",
            min=2,
            help="Phase 5: out-of-sample trades a family "
            f"needs to be tested {_env('min_family_trades')}.",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (the printed reports), json (the phases' results as one "
            "document on stdout) or csv (Phase 5's per-template table on stdout; needs "
            "--strategy-report); with json or csv the progress and reports go to stderr.",
        ),
    ] = "table",
) -> None:
    """Run discovery (Phase 2), clustering (2.5) and the playbook search (3), with checkpoints;
    then, on request, the forward pass (Phase 4) and strategy selection (Phase 5).

    A rerun resumes from the checkpoints whose inputs did not change. The original three uses:
    `--fresh --forward-pass --strategy-report` (full pipeline), `--forward-pass --strategy-report`
    (forward pass and report on the existing playbook), `--strategy-report` (report alone). The
    original tier thresholds are settings (EDGEFINDER_TIER1_PROB … EDGEFINDER_TIER4_TRADES).
    """
    from edgefinder.console import Console, check_format
    from edgefinder.markets.orchestrator import Orchestrator, PipelineError
    from edgefinder.markets.physics import THRESHOLDS, PhysicsConfig
    from edgefinder.markets.views import print_run_summary
    from edgefinder.settings import get_settings

    settings = get_settings()
    flags = {
        "snap_z": snap_z,
        "snap_velocity": snap_velocity,
        "drive_momentum": drive_momentum,
        "drive_coherence": drive_coherence,
    }
    physics = PhysicsConfig.from_settings(settings, **flags)
    # What the user asked for explicitly (flag, EDGEFINDER_* or .env): a forward pass on an existing
    # playbook takes the others from state.json and refuses these if they differ from it.
    physics_asked = {
        k: getattr(physics, k)
        for k in THRESHOLDS
        if flags[k] is not None or k in settings.model_fields_set
    }

    def pick(value: _T | None, name: str) -> _T:
        return getattr(settings, name) if value is None else value

    if cascade is not None and cascade not in ("context", "strict"):
        raise typer.BadParameter(f"--cascade must be context or strict, got {cascade!r}")
    if sampler is not None and sampler not in ("qmc", "tpe"):
        raise typer.BadParameter(f"--sampler must be qmc or tpe, got {sampler!r}")
    report_only = strategy_report and not (forward_pass or fresh)
    if data is None and not report_only:
        raise PipelineError(
            "--data DIR (the ATLAS root) is required, except for --strategy-report alone"
        )
    if check_format(fmt) == "csv" and not strategy_report:
        raise PipelineError(
            "--format csv prints Phase 5's per-template table: add --strategy-report"
        )
    # Every flag is checked here, before any phase writes a checkpoint.
    symbol = _validate_run_flags(
        checkpoint_dir, data, fresh, forward_pass, train_until, forward_until, instrument
    )
    console = Console(stderr=fmt != "table")
    orch = Orchestrator(
        data_dir=data if data is not None else Path("."),
        checkpoint_dir=checkpoint_dir,
        iterations=iterations,
        train_until=train_until,
        timeframes=timeframes,
        seed=seed,
        dashboard=not no_dashboard,
        console=console,
        physics=physics,
        cascade=str(pick(cascade, "cascade")),
        max_templates=int(pick(max_templates, "max_templates")),
        sampler=str(pick(sampler, "sampler")),
        instrument=symbol,
    )
    # --- Phases 2, 2.5, 3 --- (skipped when only Phases 4–5 are asked for on existing checkpoints)
    summary = forward = selection = None
    if fresh or not (forward_pass or strategy_report):
        summary = orch.run(fresh=fresh)
        print_run_summary(console, summary)
    if forward_pass:
        from edgefinder.markets.forward import ForwardConfig

        forward = orch.run_forward_pass(
            ForwardConfig(
                match_distance=float(pick(match_distance, "match_distance")),
                min_prob=float(pick(min_prob, "min_prob")),
                min_conf=float(pick(min_conf, "min_conf")),
                min_depth=int(pick(min_depth, "min_depth")),
                instrument=orch.instrument.symbol,
            ),
            fresh=fresh,
            physics=physics_asked,
            forward_until=forward_until,
        )
    if strategy_report:
        from edgefinder.markets.selection import SelectionConfig

        selection = orch.run_strategy_selection(
            SelectionConfig.from_settings(
                settings, q_max=q_max, dsr_min=dsr_min, min_family_trades=min_family_trades
            )
        )
    if fmt != "table":
        _write_run_results(fmt, checkpoint_dir, summary, forward, selection)


def _validate_run_flags(
    checkpoint_dir: Path,
    data: Path | None,
    fresh: bool,
    forward_pass: bool,
    train_until: Any,
    forward_until: Any,
    instrument: str | None,
) -> str:
    """``markets run``'s cross-flag rules, checked before any phase runs; returns the instrument.

    Without ``--fresh`` a forward pass on existing checkpoints takes their instrument, training
    cut-off and data; a flag that contradicts them is one line here, not after Phases 2–3 ran.
    """
    from edgefinder.markets.checkpoints import (
        check_dataset,
        check_instrument,
        recorded_instrument,
        training_record,
    )
    from edgefinder.markets.instruments import DEFAULT_SYMBOL, get_instrument
    from edgefinder.markets.orchestrator import PipelineError

    if forward_until is not None and not forward_pass:
        raise PipelineError(
            "--forward-until holds sessions back from the forward pass: add --forward-pass, "
            "or drop --forward-until"
        )
    asked = get_instrument(instrument).symbol if instrument else None
    t_until = _atlas_start(train_until, "--train-until")
    f_until = _atlas_start(forward_until, "--forward-until")
    reuse = forward_pass and not fresh  # the forward pass replays what the checkpoints hold
    if reuse:
        rec = training_record(checkpoint_dir)
        if t_until is None and rec is not None:
            t_until = rec.train_until
        if data is not None and data.is_dir():
            check_dataset(checkpoint_dir, data, PipelineError)
    if f_until is not None and t_until is not None and f_until <= t_until:
        raise PipelineError(
            f"--forward-until {_fmt_epoch(f_until)} must come after --train-until "
            f"{_fmt_epoch(t_until)}: no out-of-sample session would be replayed"
        )
    if fresh:
        return asked or DEFAULT_SYMBOL
    if reuse:  # Phases 2–3 are not rerun: the playbook's instrument is the only right one
        return check_instrument(checkpoint_dir, asked, PipelineError) or DEFAULT_SYMBOL
    # a rerun resumes Phase 3 on the recorded instrument, or reruns it on another one asked for
    return asked or recorded_instrument(checkpoint_dir) or DEFAULT_SYMBOL


def _fmt_epoch(t: int) -> str:
    return _dt.datetime.fromtimestamp(int(t), _dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _atlas_start(value: Any, flag: str) -> int | None:
    """A date flag as a session boundary (epoch s), or a one-line PipelineError."""
    from edgefinder.markets.atlas import AtlasError, session_start
    from edgefinder.markets.orchestrator import PipelineError

    try:
        return session_start(value, flag)
    except AtlasError as exc:
        raise PipelineError(str(exc)) from None


def _write_run_results(
    fmt: str,
    checkpoint_dir: Path,
    summary: RunSummary | None,
    forward: ForwardResult | None,
    selection: SelectionResult | None,
) -> None:
    """``markets run --format json|csv``: what the phases that ran produced, on stdout."""
    from edgefinder import DISCLAIMER, PURPOSE
    from edgefinder.console import write_records

    rows = selection.stats.to_dict(orient="records") if selection is not None else []
    if fmt == "csv":
        write_records("csv", rows)
        return
    doc: dict[str, object] = {
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
        "checkpoint_dir": str(checkpoint_dir),
    }
    if summary is not None:
        doc["phases_2_3"] = summary.as_dict()
    if forward is not None:
        rep = forward.report
        doc["forward"] = {
            k: rep[k]
            for k in (
                "complete",
                "sessions_processed",
                "sessions_total",
                "all",
                "in_sample",
                "out_of_sample",
                "gates",
                "regret",
            )
            if k in rep
        }
    if selection is not None:
        doc["selection"] = {
            "significance_sample": selection.significance_sample,
            "test_sample": selection.test_block,
            "families": selection.families.to_dict(orient="records"),
            "ancestry_tests": selection.ancestry_tests.to_dict(orient="records"),
            "meta_label": selection.meta,
            "production": {str(k): v for k, v in selection.production.items()},
        }
    write_records("json", rows, doc, key="templates")


@markets_app.command("approve-playbook")
def approve_playbook_cmd(
    checkpoint_dir: Annotated[
        Path,
        typer.Option("--checkpoint-dir", help="Directory holding production_playbook.pkl/.json."),
    ] = _default("checkpoint_dir"),
    reviewer: Annotated[
        str | None,
        typer.Option("--reviewer", help="Name of the person approving (recorded in the JSON)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="ATLAS root the playbook is meant for: refused unless the checkpoints were "
            "built from it.",
        ),
    ] = None,
) -> None:
    """Human review step: mark the production playbook `approved` (it is written `pending_review`)."""
    from edgefinder.console import Console
    from edgefinder.markets.checkpoints import check_dataset
    from edgefinder.markets.selection import SelectionError, approve_playbook

    if data is not None:
        if not data.is_dir():
            raise SelectionError(f"data directory not found: {data}")
        check_dataset(checkpoint_dir, data, SelectionError)
    doc = approve_playbook(checkpoint_dir, reviewer)
    Console().print(
        f"production playbook in {checkpoint_dir}: {len(doc.get('templates', {}))} templates, "
        f"status [bold]{doc['status']}[/bold] (reviewer {doc['reviewer']}, {doc['reviewed_at']})"
    )


@markets_app.command("paper-trade")
def paper_trade_cmd(
    checkpoint_dir: Annotated[
        Path,
        typer.Option(
            "--checkpoint-dir",
            help="Directory holding the production playbook and the forward pass's record.",
        ),
    ] = _default("checkpoint_dir"),
    data: Annotated[
        Path, typer.Option("--data", help="ATLAS root holding the sessions to replay.")
    ] = Path("DATA/ATLAS"),
    date_from: Annotated[
        _dt.date | None,
        typer.Option(
            "--from",
            click_type=DATE,
            help="First session to replay (YYYY-MM-DD, the date a CME "
            "session ends); must come after every session Phases 2–5 used.",
        ),
    ] = None,
    date_to: Annotated[
        _dt.date | None,
        typer.Option(
            "--to",
            click_type=DATE,
            help="Last session to replay (default: the last in the ATLAS).",
        ),
    ] = None,
    instrument: Annotated[str | None, _instrument_option()] = None,
    allow_pending: Annotated[
        bool,
        typer.Option(
            "--allow-pending",
            help="Paper-trade a playbook that is still "
            "pending_review (not yet approved by a person).",
        ),
    ] = False,
) -> None:
    """Replay unseen sessions with the frozen production playbook (no new templates, no search, no brain
    updates; the forward pass's scan, gates and exits) and write paper_trade_report.json."""
    from edgefinder.console import Console
    from edgefinder.markets.paper_trade import PaperTradeError, run_paper_trade

    if date_from is None:
        raise PaperTradeError("--from YYYY-MM-DD is required (the first unseen session to replay)")
    run_paper_trade(
        checkpoint_dir,
        data,
        date_from,
        date_to,
        allow_pending=allow_pending,
        console=Console(),
        instrument=instrument,
    )


@markets_app.command("walk-forward")
def walk_forward_cmd(
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            help="SYMBOL=PATH: one instrument (contract from the instrument table: "
            "MNQ, NQ, ES, MES) and its ATLAS root; repeat for several. Every Dask worker "
            "must see PATH.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Study directory (every worker writes into it): study.json, "
            "trial_ledger.parquet, tasks/.",
        ),
    ],
    folds: Annotated[int, typer.Option("--folds", min=1, help="Walk-forward folds.")] = 4,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme", help="anchored (learning window grows) or rolling (fixed length)."
        ),
    ] = "anchored",
    purge: Annotated[
        str,
        typer.Option(
            "--purge",
            help="CME sessions between learning and test blocks that "
            "feed nothing (N, Nd or 'N sessions').",
        ),
    ] = "1",
    embargo: Annotated[
        str,
        typer.Option(
            "--embargo",
            help="CME sessions skipped after each test block before "
            "its paper block (N, Nd or 'N sessions').",
        ),
    ] = "1",
    learn_blocks: Annotated[
        int,
        typer.Option(
            "--learn-blocks", min=1, help="Length of the (first) learning window, in test blocks."
        ),
    ] = 2,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Address of a running Dask scheduler "
            "(tcp://HOST:8786); default a LocalCluster on this machine.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="LocalCluster worker processes (default: one per core)."
        ),
    ] = None,
    serial: Annotated[
        bool,
        typer.Option("--serial", help="No Dask: every task in this process, one after another."),
    ] = False,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, help="Phase 3 trials per template.")
    ] = 50,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for clustering, the search and fission.")
    ] = 0,
    timeframes: Annotated[
        str | None,
        typer.Option(
            "--timeframes", help="Comma list restricting the hierarchy (default: every timeframe)."
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table (printed report) or json (study.json on stdout).")
    ] = "table",
) -> None:
    """Walk-forward study: per instrument and fold, Phases 2–5 learn and select on the fold's
    learning sessions, judge on its test block, and the frozen playbook is paper-traded on the next
    block; Phase 5's tests span every instrument; PBO, deflated Sharpe over the trial ledger and
    minimum track record length; tasks on Dask, a rerun reuses finished ones."""
    import json

    from edgefinder.console import Console, check_format
    from edgefinder.markets.folds import make_folds, parse_sessions
    from edgefinder.markets.forward import ForwardConfig
    from edgefinder.markets.selection import SelectionConfig
    from edgefinder.markets.walkforward import (
        StudyConfig,
        common_sessions,
        parse_data,
        print_study,
        run_study,
    )
    from edgefinder.settings import get_settings

    check_format(fmt)
    if fmt == "csv":
        raise typer.BadParameter("--format must be table or json")
    if serial and (scheduler or workers):
        raise typer.BadParameter("--serial runs no Dask: drop --scheduler and --workers")
    settings = get_settings()
    instruments = parse_data(data)
    sessions = common_sessions(instruments)
    fold_list = make_folds(
        sessions,
        folds,
        scheme,
        parse_sessions(purge, "--purge"),
        parse_sessions(embargo, "--embargo"),
        learn_blocks,
    )
    fwd = ForwardConfig(
        match_distance=settings.match_distance,
        min_prob=settings.min_prob,
        min_conf=settings.min_conf,
        min_depth=settings.min_depth,
    )
    sel = SelectionConfig.from_settings(settings)
    cfg = StudyConfig(
        out=str(out.resolve()),
        instruments=instruments,
        folds=tuple(fold_list),
        scheme=scheme,
        iterations=iterations,
        seed=seed,
        timeframes=tuple(t.strip() for t in timeframes.split(",") if t.strip())
        if timeframes
        else None,
        cascade=settings.cascade,
        max_templates=settings.max_templates,
        sampler=settings.sampler,
        forward={
            k: getattr(fwd, k) for k in ("match_distance", "min_prob", "min_conf", "min_depth")
        },
        selection={k: getattr(sel, k) for k in ("q_max", "dsr_min", "min_family_trades")},
    )
    console = Console(stderr=fmt != "table")
    if serial:
        result = run_study(cfg)
    else:
        from edgefinder.markets.cluster import DaskRunner, open_client

        client, name, close = open_client(scheduler, workers)
        try:
            result = run_study(cfg, DaskRunner(client, console), name)
        finally:
            close()
    if fmt == "json":
        typer.echo(json.dumps(result.doc, indent=2, sort_keys=True))
    else:
        print_study(console, result.doc)
        console.print(
            f"{result.ran} task(s) ran, {result.reused} reused; {result.path} and "
            f"{result.path.parent / 'trial_ledger.parquet'}"
        )
