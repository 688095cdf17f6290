"""`edgefinder esports …` commands: simulate, publish, ingest, import, analyze, worker, beat, insights, export."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefinder.dates import DATE
from edgefinder.errors import EdgefinderError
from edgefinder.settings import setting_default

esports_app = typer.Typer(
    help="Esports analytics: simulate matches, publish/ingest events, run the correlation job.",
    no_args_is_help=True,
)


# --- simulate / publish / ingest ----------------------------------------------------------


@esports_app.command()
def simulate(
    matches: Annotated[int, typer.Option("--matches", "-n", min=1, help="Number of matches.")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 0,
    out: Annotated[
        Path, typer.Option(help="Output JSONL; the ground truth goes beside it.")
    ] = Path("events.jsonl"),
    strength: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=3.0,
            help="SD (log-odds) of a latent per-match-and-team strength that raises the win chance and the "
            "hold/peek rates (a confounder no covariate sees); 0 = none.",
        ),
    ] = 0.0,
    dynamics: Annotated[
        str,
        typer.Option(
            help="counts: per-round signal counts with planted count effects; rounds: fights that "
            "snowball, signals from living players, one planted cause (opening peeks).",
        ),
    ] = "counts",
) -> None:
    """Simulate CS-style matches with planted intent effects; write events + <out>.truth.json."""
    from edgefinder.console import Console
    from edgefinder.esports.simulate import (
        DYNAMICS,
        RoundsConfig,
        SimConfig,
        simulate_to_file,
        truth_path,
    )

    if dynamics not in DYNAMICS:
        raise typer.BadParameter(f"one of {', '.join(DYNAMICS)}", param_hint="--dynamics")
    console = Console()
    started = time.perf_counter()
    config = (
        RoundsConfig(strength_sd=strength)
        if dynamics == "rounds"
        else SimConfig(strength_sd=strength)
    )
    sim = simulate_to_file(matches, seed, out, config, dynamics=dynamics)
    console.print(
        f"wrote [bold]{sim.n_canonical + sim.n_signals:,}[/bold] events "
        f"({sim.n_canonical:,} canonical, {sim.n_signals:,} motion signals; "
        f"{sim.truth['rounds']:,} rounds of {matches} matches"
        + (
            f", team strength SD {strength:g} on {', '.join(sim.truth['strength']['intents'])}"
            if strength and dynamics == "counts"
            else f", round dynamics, team strength SD {strength:g}"
            if strength
            else ""
        )
        + f") to {out} "
        f"and the ground truth to {truth_path(out)} in {time.perf_counter() - started:.1f} s"
    )


@esports_app.command()
def publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL events file.")],
    redis_url: Annotated[
        str | None, typer.Option(help="redis://host:port/db [env EDGEFINDER_REDIS_URL]")
    ] = None,
) -> None:
    """Put every line of FILE on its Redis stream (signal_id -> events:agent:motion, else canonical).

    Lines that are not valid events are reported on stderr with their line number (and published
    all the same: the consumer dead-letters them); the run goes on.
    """
    from rich.markup import escape

    from edgefinder.console import Console
    from edgefinder.esports.ingest import connect_redis
    from edgefinder.esports.sources import publish as publish_file
    from edgefinder.esports.sources import stream_keys
    from edgefinder.settings import get_settings

    s = get_settings()
    url = redis_url or s.redis_url
    if not url:
        raise EdgefinderError("no Redis URL: set EDGEFINDER_REDIS_URL or pass --redis-url")
    client = connect_redis(url)
    started = time.perf_counter()
    err = Console(stderr=True, highlight=False)
    shown = 0

    def report(lineno: int, reason: str) -> None:
        nonlocal shown
        shown += 1
        if shown <= 20:
            err.print(f"{file}:{lineno}: {escape(reason)}", soft_wrap=True)

    counts = publish_file(
        file, client, s.redis_prefix, max_bytes=s.max_event_bytes, on_invalid=report
    )
    keys = stream_keys(s.redis_prefix)
    if shown > 20:
        err.print(f"… and {shown - 20:,} more invalid lines")
    Console().print(
        f"published {counts['canonical']:,} entries to {keys['canonical']} and "
        f"{counts['motion']:,} to {keys['motion']} in {time.perf_counter() - started:.1f} s"
        + (
            f"; {shown:,} lines are not valid events (the consumer dead-letters them)"
            if shown
            else ""
        )
    )


@esports_app.command()
def ingest(
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file", exists=True, dir_okay=False, help="Read a JSONL file instead of Redis."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Entries per batch/transaction.")
    ] = 1000,
    consumer: Annotated[
        str | None, typer.Option(help="Consumer name in the group (default: host-pid).")
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once/--follow", help="Stop when the streams are drained, or keep following."
        ),
    ] = True,
    redis_url: Annotated[
        str | None, typer.Option(help="redis://host:port/db [env EDGEFINDER_REDIS_URL]")
    ] = None,
    group: Annotated[str, typer.Option(help="Consumer group name.")] = "edgefinder-ingest",
    max_deliveries: Annotated[
        int,
        typer.Option(
            min=1,
            help="An entry on which consumers failed this many times while writing it alone goes to dead letters.",
        ),
    ] = 5,
    claim_idle_ms: Annotated[
        int,
        typer.Option(min=0, help="Take over entries another consumer left pending this long (ms)."),
    ] = 60_000,
    block_ms: Annotated[int, typer.Option(min=1, help="XREADGROUP BLOCK time (ms).")] = 1000,
    max_event_bytes: Annotated[
        int | None,
        typer.Option(
            min=256,
            help="Size limit of one event (bytes) "
            f"[env EDGEFINDER_MAX_EVENT_BYTES, {setting_default('max_event_bytes')}].",
        ),
    ] = None,
    motion_consumers: Annotated[
        int, typer.Option(min=1, max=16, help="Motion-stream consumers (threads) in this process.")
    ] = 2,
    progress: Annotated[bool, typer.Option(help="Show a live progress display.")] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve the consumers' /metrics on this port (from Redis only; 0 = none) "
            "[env EDGEFINDER_INGEST_METRICS_PORT].",
        ),
    ] = None,
) -> None:
    """Run both consumers (canonical + motion) into the database, or ingest one JSONL file."""
    import signal
    import threading

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgefinder.console import Console
    from edgefinder.esports.ingest import (
        IngestConfig,
        IngestCounters,
        connect_redis,
        make_pipeline,
        run_ingest,
        tune_gc_for_ingest,
    )
    from edgefinder.settings import get_settings

    s = get_settings()
    max_event_bytes = max_event_bytes or s.max_event_bytes
    console = Console(stderr=True)
    url = redis_url or s.redis_url
    if from_file is None and not url:
        raise EdgefinderError(
            "no source: pass --from-file FILE or set EDGEFINDER_REDIS_URL / --redis-url"
        )
    cfg = IngestConfig(
        batch_size=batch_size,
        block_ms=block_ms,
        max_event_bytes=max_event_bytes,
        max_deliveries=max_deliveries,
        min_idle_ms=claim_idle_ms,
        group=group,
    )
    # without --from-file a url is set (checked above)
    client = connect_redis(url) if from_file is None and url else None
    if client is not None:
        from edgefinder.esports.metrics_endpoint import serve_metrics

        port = s.ingest_metrics_port if metrics_port is None else metrics_port
        serve_metrics(port, "EDGEFINDER_INGEST_METRICS_PORT")
    pipeline = make_pipeline(
        s.effective_database_url,
        s.pseudonym_key.get_secret_value(),
        max_event_bytes=max_event_bytes,
    )
    tune_gc_for_ingest()
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        console.print(f"stopping after the current batch ({signal.Signals(signum).name})")
        stop.set()

    old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    total = None
    if from_file is not None:
        with from_file.open("rb") as fh:
            total = sum(1 for line in fh if line.strip())
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns.append(BarColumn())
    columns += [TextColumn("{task.fields[stats]}"), TimeElapsedColumn()]
    prog = Progress(*columns, console=console, disable=not progress, transient=False)
    desc = (
        f"ingest {from_file}"
        if from_file
        else f"ingest {s.redis_prefix}events:* ({'once' if once else 'follow'})"
    )
    task = prog.add_task(desc, total=total, stats="")

    def show(c: IngestCounters) -> None:
        rate = c.events / c.elapsed_s if c.elapsed_s > 0 else 0.0
        prog.update(
            task,
            completed=c.entries,
            stats=f"{c.canonical:,} canonical · {c.signals:,} signals · {c.dead_letters:,} dead · {rate:,.0f} ev/s",
        )

    try:
        with prog:
            counters = run_ingest(
                pipeline,
                from_file=from_file,
                redis_client=client,
                prefix=s.redis_prefix,
                consumer=consumer,
                config=cfg,
                once=once,
                stop=stop,
                on_batch=show,
                motion_consumers=motion_consumers,
            )
            show(counters)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        pipeline.engine.dispose()
    if from_file is not None and counters.entries == counters.dead_letters:
        # a wrong file (another format, a truncated export) must not look like a successful ingest
        raise EdgefinderError(
            f"{from_file}: no valid event in its {counters.entries:,} line(s), nothing ingested "
            f"({counters.dead_letters:,} dead letters, each with its reason)"
        )
    rate = counters.events / counters.elapsed_s if counters.elapsed_s > 0 else 0.0
    Console().print(
        f"ingested {counters.canonical:,} canonical events and {counters.signals:,} motion signals "
        f"({counters.dead_letters:,} dead letters, {counters.conflicts:,} of them conflicts, "
        f"{counters.retries} retries) in "
        f"{counters.elapsed_s:.1f} s ({rate:,.0f} events/s)"
        + (" — stopped by signal" if stop.is_set() else "")
    )


# --- import real match data ---------------------------------------------------------------------


@esports_app.command("import")
def import_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Source files or directories (see --format).")
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="awpy (CS tables, CSV/Parquet), esea (ESEA/Kaggle "
            "CSVs) or ribgg (rib.gg Valorant JSON/JSON.gz dumps).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", dir_okay=False, help="Write JSONL here (default: stdout)."),
    ] = None,
    ingest: Annotated[
        bool, typer.Option("--ingest", help="Ingest into the database instead of writing JSONL.")
    ] = False,
    tick_rate: Annotated[float, typer.Option(min=1.0, help="awpy: demo ticks per second.")] = 128.0,
    show_skipped: Annotated[
        int, typer.Option(min=0, help="Skipped source rows to list (all are counted).")
    ] = 10,
) -> None:
    """Convert real match data into canonical events and derived motion signals (JSONL or --ingest)."""
    import sys

    from edgefinder.console import Console
    from edgefinder.esports.importers import FORMATS, import_files, ingest_events, write_jsonl
    from edgefinder.settings import get_settings

    if fmt not in FORMATS:
        raise EdgefinderError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if ingest and out is not None:
        raise EdgefinderError("--out and --ingest exclude each other")
    err = Console(stderr=True)
    started = time.perf_counter()
    options = {"tick_rate": tick_rate} if fmt == "awpy" else {}
    with err.status(f"reading {fmt} files"):
        builders, report = import_files(fmt, paths, **options)
    for note in report.notes:
        err.print(f"[dim]note: {note}[/dim]")
    for row in report.skipped[:show_skipped]:
        err.print(f"skipped {row.source} row {row.row}: {row.reason}")
    if len(report.skipped) > show_skipped:
        err.print(f"… and {len(report.skipped) - show_skipped} more skipped rows")
    intents = (
        ", ".join(f"{k} {v:,}" for k, v in sorted(report.signals.items(), key=lambda kv: -kv[1]))
        or "none"
    )
    err.print(f"{report.summary()}; signals by intent: {intents}")
    if ingest:
        s = get_settings()
        counters = ingest_events(
            builders,
            s.effective_database_url,
            s.pseudonym_key.get_secret_value(),
            source_name=f"import:{fmt}",
        )
        Console().print(
            f"ingested {counters.canonical:,} canonical events and {counters.signals:,} motion signals "
            f"({counters.dead_letters:,} dead letters) in {time.perf_counter() - started:.1f} s"
        )
        return
    if out is None:
        write_jsonl(builders, sys.stdout)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        n = write_jsonl(builders, fh)
    Console().print(f"wrote {n:,} events to {out} in {time.perf_counter() - started:.1f} s")


# --- analyze ----------------------------------------------------------------------------------


@esports_app.command()
def analyze(
    seed: Annotated[int, typer.Option(help="Seed of every random step (folds, forests).")] = 0,
    top: Annotated[int, typer.Option(min=1, max=200, help="Findings to print.")] = 15,
    include_in_round: Annotated[
        bool, typer.Option(help="Also list kills/deaths/opening-kill associations.")
    ] = False,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///… or postgresql://… [env EDGEFINDER_DATABASE_URL]")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (the top findings), or json / csv: every result row of the "
            "run on stdout, for a program (messages go to stderr).",
        ),
    ] = "table",
) -> None:
    """Run the correlation job once (features, tests, BH, causal) and print the top findings."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgefinder import DISCLAIMER, PURPOSE
    from edgefinder.console import Console, check_format, write_records
    from edgefinder.esports.jobs import JobParams, run_correlation_job
    from edgefinder.esports.report import print_run
    from edgefinder.settings import get_settings
    from edgefinder.store.engine import check_connection, make_engine
    from edgefinder.store.migrate import upgrade

    s = get_settings()
    check_format(fmt)
    console = Console(stderr=fmt != "table")
    url = database_url or s.effective_database_url
    # Like `ingest`: an unreachable server is one line (ConnectionFailed), and a fresh database gets
    # the schema, so the first `analyze` says "ingest events first" instead of "no such table".
    engine = make_engine(url)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    upgrade(url)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as prog:
        task = prog.add_task("correlation job", total=None)
        result = run_correlation_job(
            url,
            params=JobParams(seed=seed),
            progress=lambda msg: prog.update(task, description=msg),
            trigger="cli",
        )
    if fmt == "table":
        print_run(result, console, top, include_in_round=include_in_round)
    else:
        meta = {
            "run_id": result.run_id,
            "status": result.status,
            "message": result.message,
            "n_rows": result.n_rows,
            "n_tests": result.n_tests,
            "n_significant": result.n_significant,
            "duration_s": result.duration_s,
            "purpose": PURPOSE,
            "disclaimer": DISCLAIMER,
        }
        rows = [{"run_id": result.run_id, **r} for r in result.results.to_dict(orient="records")]
        write_records(fmt, rows, meta, key="results")
    if result.n_alerts:
        console.print(
            f"{result.n_alerts} alert(s) against the previous run: edgefinder esports insights, "
            "or GET /api/v1/analytics/alerts"
        )
    if s.alert_webhook_url and result.n_alerts:
        from edgefinder.esports.webhook import flush

        # the job never waits for the webhook; a command that exits gives pending deliveries a bounded time
        if not flush(WEBHOOK_FLUSH_S):
            Console(stderr=True).print(
                f"webhook deliveries still pending after {WEBHOOK_FLUSH_S:g} s; "
                "see alerts.webhook_error"
            )


WEBHOOK_FLUSH_S = 30.0

winprob_app = typer.Typer(help="Round win-probability models.", no_args_is_help=True)
esports_app.add_typer(winprob_app, name="winprob")


@winprob_app.command("fit")
def winprob_fit(
    seed: Annotated[int, typer.Option(help="Seed of every random step (booster, bootstrap).")] = 0,
    values: Annotated[
        bool, typer.Option(help="Also value every micro action in win-probability points.")
    ] = True,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///… or postgresql://… [env EDGEFINDER_DATABASE_URL]")
    ] = None,
) -> None:
    """Fit one calibrated round win-probability model per game, store it with a version, and print
    its held-out metrics beside the baseline's (each with a match-bootstrap CI)."""
    from edgefinder.console import Console
    from edgefinder.esports.winprob.actions import ActionValueParams
    from edgefinder.esports.winprob.model import WinProbParams
    from edgefinder.esports.winprob.run import fit_and_value
    from edgefinder.esports.winprob.tables import metrics_table, values_table
    from edgefinder.settings import get_settings
    from edgefinder.store.engine import check_connection, make_engine
    from edgefinder.store.migrate import upgrade

    url = database_url or get_settings().effective_database_url
    engine = make_engine(url)
    try:
        check_connection(engine)
        upgrade(url)
        run = fit_and_value(
            engine, WinProbParams(seed=seed), ActionValueParams(seed=seed), values=values
        )
    finally:
        engine.dispose()
    console = Console()
    for _game, (version, fit) in run.fits.items():
        console.print(metrics_table(fit.model.game, version, fit.metrics, fit.baseline_metrics))
    for game, why in run.skipped.items():
        console.print(f"{game}: no model ({why})")
    if not run.fits and not run.skipped:
        console.print("no finished rounds in the database: ingest events first")
    if values and len(run.values):
        console.print(values_table(run.values))


_PASS_THROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": ["--help"],
}


def _celery_app() -> object:
    from edgefinder.esports.tasks import celery_app, celery_config
    from edgefinder.settings import get_settings

    s = get_settings()
    if not s.redis_url:
        raise EdgefinderError("Celery needs a broker: set EDGEFINDER_REDIS_URL or pass --redis-url")
    from edgefinder.esports.ingest import connect_redis

    connect_redis(s.redis_url).close()  # one clear line when the broker is down, not a retry loop
    celery_app.conf.update(celery_config(s))  # flags given to `edgefinder` win over the environment
    return celery_app


@esports_app.command(context_settings=_PASS_THROUGH)
def worker(
    ctx: typer.Context,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve the worker's /metrics on this port (0 = none) "
            "[env EDGEFINDER_WORKER_METRICS_PORT].",
        ),
    ] = None,
) -> None:
    """Start a Celery worker (Celery's own; extra options go to `celery worker`, e.g. --concurrency 2 --pool solo).

    It runs the correlation job when beat or POST /run-analysis asks, and the stream consumers when
    `start_analytics_consumers` is sent. Broker and key prefix: EDGEFINDER_REDIS_URL / _PREFIX.
    /metrics shows the worker's main process: with `--pool solo` or `threads` that is where tasks
    run; a prefork pool's children count in their own processes.
    """
    from edgefinder.esports.metrics_endpoint import serve_metrics
    from edgefinder.settings import get_settings

    app = _celery_app()
    s = get_settings()
    serve_metrics(
        s.worker_metrics_port if metrics_port is None else metrics_port,
        "EDGEFINDER_WORKER_METRICS_PORT",
    )
    app.worker_main(argv=["worker", f"--loglevel={s.log_level}", *ctx.args])  # type: ignore[attr-defined]


@esports_app.command(
    context_settings=_PASS_THROUGH,
    help="Start Celery beat: the correlation job on EDGEFINDER_ANALYSIS_SCHEDULE "
    f"(default '{setting_default('analysis_schedule')}', UTC).\n\n"
    "The schedule state file is <data_dir>/celerybeat-schedule; extra options go to `celery beat`.",
)
def beat(ctx: typer.Context) -> None:
    """Start Celery beat on the settings' analysis schedule (the command's help says more)."""
    from edgefinder.console import Console
    from edgefinder.settings import get_settings

    s = get_settings()
    app = _celery_app()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    schedule = str(s.data_dir / "celerybeat-schedule")
    Console(stderr=True).print(f"beat: run-correlation-analysis on '{s.analysis_schedule}' (UTC)")
    app.start(argv=["beat", f"--loglevel={s.log_level}", f"--schedule={schedule}", *ctx.args])  # type: ignore[attr-defined]


@esports_app.command()
def insights(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new insights (Ctrl-C stops).")
    ] = False,
    last: Annotated[
        int, typer.Option(min=0, max=100_000, help="Newest entries to print first.")
    ] = 20,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="text, json (one object per line) or auto (text on a terminal)."
        ),
    ] = "auto",
) -> None:
    """Print the insights stream (run summaries and alerts) the agent system reads."""
    import json
    import signal
    import sys
    import threading

    from edgefinder.console import Console
    from edgefinder.esports.ingest import connect_redis
    from edgefinder.esports.insights import insights_key, read_insights
    from edgefinder.settings import get_settings

    if fmt not in ("auto", "text", "json"):
        raise EdgefinderError(f"unknown --format {fmt!r}: use text, json or auto")
    s = get_settings()
    if not s.redis_url:
        raise EdgefinderError(
            "the insights stream lives in Redis: set EDGEFINDER_REDIS_URL or pass --redis-url"
        )
    client = connect_redis(s.redis_url)
    as_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    console = Console(highlight=False, soft_wrap=True)  # one line per insight, also in a pipe
    stop = threading.Event()
    old = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    n = 0
    try:
        for entry_id, item in read_insights(
            client, s.redis_prefix, last=last, follow=follow, stop=stop
        ):
            n += 1
            if as_json:
                sys.stdout.write(json.dumps({"entry_id": entry_id, **item}) + "\n")
                sys.stdout.flush()
            else:
                console.print(_insight_line(entry_id, item))
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        client.close()
    if n == 0 and not as_json:
        Console(stderr=True).print(
            f"no insights in {insights_key(s.redis_prefix)} yet (runs publish them)"
        )


def _insight_line(entry_id: str, item: dict[str, Any]) -> str:
    from rich.markup import escape

    when = (item.get("finished_at") or item.get("created_at") or "")[:19].replace("T", " ")
    if item.get("type") == "run_summary":
        alerts = sum((item.get("alerts") or {}).values())
        if item.get("status") == "failed":
            return f"[dim]{when}[/dim] run {item['run_id'][:8]} [red]failed[/red]: {escape(str(item.get('error')))}"
        return (
            f"[dim]{when}[/dim] run {item['run_id'][:8]} [green]{item.get('status')}[/green] "
            f"({item.get('trigger') or '?'}): {escape(str(item.get('message')))}; {alerts} alert(s)"
        )
    if item.get("type") == "alert":
        head = f"[dim]{when}[/dim] [yellow]alert {item['id']}[/yellow] [bold]{item['kind']}[/bold]"
        return f"{head} {escape(item['message'])}"
    return f"[dim]{entry_id}[/dim] {escape(str(item))}"


@esports_app.command()
def export(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", file_okay=False, help="Directory of the Parquet datasets."),
    ],
    since: Annotated[
        date | None,
        typer.Option(
            click_type=DATE, help="Only match dates (run dates) on or after this day, YYYY-MM-DD."
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///… or postgresql://… [env EDGEFINDER_DATABASE_URL]")
    ] = None,
) -> None:
    """Write features, correlation_results and micro_actions as Parquet datasets partitioned by date."""
    from rich.table import Table

    from edgefinder.console import Console
    from edgefinder.esports.export import export_datasets
    from edgefinder.settings import get_settings
    from edgefinder.store.engine import check_connection, make_engine
    from edgefinder.store.migrate import upgrade

    day = since
    url = database_url or get_settings().effective_database_url
    engine = make_engine(url)
    try:
        check_connection(engine)
        upgrade(url)
        console = Console(stderr=True)
        with console.status("exporting") as status:
            written = export_datasets(
                engine, out, since=day, progress=lambda name: status.update(f"exporting {name}")
            )
    finally:
        engine.dispose()
    table = Table(title=f"Parquet datasets in {out}" + (f" (since {day})" if day else ""))
    for col in ("dataset", "rows", "files", "path"):
        table.add_column(col, justify="right" if col in ("rows", "files") else "left")
    for d in written:
        table.add_row(d.name, f"{d.rows:,}", str(d.files), str(d.path))
    Console().print(table)


if __name__ == "__main__":  # `python -m edgefinder.esports.cli …` (the tests' subprocess entry)
    esports_app()
