"""`edgefinder esports …` commands: simulate, publish, ingest, analyze."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgefinder.errors import EdgefinderError

esports_app = typer.Typer(
    help="Esports analytics: simulate matches, publish/ingest events, run the correlation job.",
    no_args_is_help=True,
)


# --- simulate / publish / ingest (owner: ingest helper) ------------------------------------


@esports_app.command()
def simulate(
    matches: Annotated[int, typer.Option("--matches", "-n", min=1, help="Number of matches.")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 0,
    out: Annotated[Path, typer.Option(help="Output JSONL; the ground truth goes beside it.")] = Path(
        "events.jsonl"
    ),
) -> None:
    """Simulate CS-style matches with planted intent effects; write events + <out>.truth.json."""
    from rich.console import Console

    from edgefinder.esports.simulate import simulate_to_file, truth_path

    console = Console()
    started = time.perf_counter()
    sim = simulate_to_file(matches, seed, out)
    console.print(
        f"wrote [bold]{sim.n_canonical + sim.n_signals:,}[/bold] events "
        f"({sim.n_canonical:,} canonical, {sim.n_signals:,} motion signals; "
        f"{sim.truth['rounds']:,} rounds of {matches} matches) to {out} "
        f"and the ground truth to {truth_path(out)} in {time.perf_counter() - started:.1f} s"
    )


@esports_app.command()
def publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL events file.")],
    redis_url: Annotated[
        Optional[str], typer.Option(help="redis://host:port/db [env EDGEFINDER_REDIS_URL]")
    ] = None,
) -> None:
    """Put every line of FILE on its Redis stream (signal_id -> events:agent:motion, else canonical).

    Lines that are not valid events are reported on stderr with their line number (and published
    all the same: the consumer dead-letters them); the run goes on.
    """
    from rich.console import Console
    from rich.markup import escape

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

    counts = publish_file(file, client, s.redis_prefix, max_bytes=s.max_event_bytes, on_invalid=report)
    keys = stream_keys(s.redis_prefix)
    if shown > 20:
        err.print(f"… and {shown - 20:,} more invalid lines")
    Console().print(
        f"published {counts['canonical']:,} entries to {keys['canonical']} and "
        f"{counts['motion']:,} to {keys['motion']} in {time.perf_counter() - started:.1f} s"
        + (f"; {shown:,} lines are not valid events (the consumer dead-letters them)" if shown else "")
    )


@esports_app.command()
def ingest(
    from_file: Annotated[
        Optional[Path],
        typer.Option("--from-file", exists=True, dir_okay=False, help="Read a JSONL file instead of Redis."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Entries per batch/transaction.")] = 1000,
    consumer: Annotated[
        Optional[str], typer.Option(help="Consumer name in the group (default: host-pid).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once/--follow", help="Stop when the streams are drained, or keep following.")
    ] = True,
    redis_url: Annotated[
        Optional[str], typer.Option(help="redis://host:port/db [env EDGEFINDER_REDIS_URL]")
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
        int, typer.Option(min=0, help="Take over entries another consumer left pending this long (ms).")
    ] = 60_000,
    block_ms: Annotated[int, typer.Option(min=1, help="XREADGROUP BLOCK time (ms).")] = 1000,
    max_event_bytes: Annotated[
        Optional[int],
        typer.Option(min=256, help="Size limit of one event (bytes) [env EDGEFINDER_MAX_EVENT_BYTES, 65536]."),
    ] = None,
    motion_consumers: Annotated[
        int, typer.Option(min=1, max=16, help="Motion-stream consumers (threads) in this process.")
    ] = 2,
    progress: Annotated[bool, typer.Option(help="Show a live progress display.")] = True,
) -> None:
    """Run both consumers (canonical + motion) into the database, or ingest one JSONL file."""
    import signal
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgefinder.esports.ingest import (
        IngestConfig,
        IngestCounters,
        connect_redis,
        tune_gc_for_ingest,
        make_pipeline,
        run_ingest,
    )
    from edgefinder.settings import get_settings

    s = get_settings()
    max_event_bytes = max_event_bytes or s.max_event_bytes
    console = Console(stderr=True)
    url = redis_url or s.redis_url
    if from_file is None and not url:
        raise EdgefinderError("no source: pass --from-file FILE or set EDGEFINDER_REDIS_URL / --redis-url")
    cfg = IngestConfig(
        batch_size=batch_size,
        block_ms=block_ms,
        max_event_bytes=max_event_bytes,
        max_deliveries=max_deliveries,
        min_idle_ms=claim_idle_ms,
        group=group,
    )
    client = connect_redis(url) if from_file is None else None
    pipeline = make_pipeline(
        s.effective_database_url, s.pseudonym_key.get_secret_value(), max_event_bytes=max_event_bytes
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
    desc = f"ingest {from_file}" if from_file else f"ingest {s.redis_prefix}events:* ({'once' if once else 'follow'})"
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
    rate = counters.events / counters.elapsed_s if counters.elapsed_s > 0 else 0.0
    Console().print(
        f"ingested {counters.canonical:,} canonical events and {counters.signals:,} motion signals "
        f"({counters.dead_letters:,} dead letters, {counters.conflicts:,} of them conflicts, "
        f"{counters.retries} retries) in "
        f"{counters.elapsed_s:.1f} s ({rate:,.0f} events/s)"
        + (" — stopped by signal" if stop.is_set() else "")
    )


# --- analyze (owner: analysis helper) --------------------------------------------------------


@esports_app.command()
def analyze(
    seed: Annotated[int, typer.Option(help="Seed of every random step (folds, forests).")] = 0,
    top: Annotated[int, typer.Option(min=1, max=200, help="Findings to print.")] = 15,
    include_in_round: Annotated[
        bool, typer.Option(help="Also list kills/deaths/opening-kill associations.")
    ] = False,
    database_url: Annotated[
        Optional[str], typer.Option(help="sqlite:///… or postgresql://… [env EDGEFINDER_DATABASE_URL]")
    ] = None,
) -> None:
    """Run the correlation job once (features, tests, BH, causal) and print the top findings."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgefinder.esports.jobs import JobParams, run_correlation_job
    from edgefinder.esports.report import print_run
    from edgefinder.settings import get_settings
    from edgefinder.store.engine import check_connection, make_engine
    from edgefinder.store.migrate import upgrade

    s = get_settings()
    console = Console()
    url = database_url or s.effective_database_url
    # Like `ingest`: an unreachable server is one line (ConnectionFailed), and a fresh database gets
    # the schema, so the first `analyze` says "ingest events first" instead of "no such table".
    engine = make_engine(url)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    upgrade(url)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as prog:  # fmt: skip
        task = prog.add_task("correlation job", total=None)
        result = run_correlation_job(
            url, params=JobParams(seed=seed), progress=lambda msg: prog.update(task, description=msg)
        )
    print_run(result, console, top, include_in_round=include_in_round)


if __name__ == "__main__":  # `python -m edgefinder.esports.cli …` (the tests' subprocess entry)
    esports_app()
