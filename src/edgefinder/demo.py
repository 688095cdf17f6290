"""``edgefinder demo``: every pipeline on generated data, embedded default, one short summary."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.rule import Rule

from edgefinder.settings import Settings


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("demo: {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _write_report(settings: Settings, db: Path, checkpoints: Path) -> Path:
    from edgefinder.report import build_report, write_report
    from edgefinder.store.engine import make_engine

    url = f"sqlite:///{db.as_posix()}"
    engine = make_engine(url)
    try:
        built = build_report(engine, url, checkpoints, stale_after_s=settings.results_stale_after_s)
    finally:
        engine.dispose()
    return write_report(built, Path(settings.data_dir) / "demo" / "report.html")


def run_demo(settings: Settings, console: Console, *, report: bool = False) -> Path | None:
    """Run the esports and futures demos in turn (each writes under ``data_dir/demo``); with ``report``
    also write the HTML report of both (``data_dir/demo/report.html``) and return its path."""
    from edgefinder.esports import demo as esports_demo
    from edgefinder.markets import demo as markets_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    console.print(
        Rule("[bold]edgefinder demo[/bold] — embedded default (SQLite + files, no servers)")
    )
    stages = ["esports analytics", "futures research", *(["the HTML report"] if report else [])]
    path = None
    # A progress bar on a terminal (it stays below the lines each step prints); in a pipe those
    # lines alone are the progress, one per step.
    with _progress(console) as prog:
        task = prog.add_task(stages[0], total=len(stages))
        console.print(Rule("Esports macro-strategy analytics"))
        db = esports_demo.run(settings, console)
        prog.update(task, advance=1, description=stages[1])
        console.print(Rule("Futures research pipeline"))
        markets = markets_demo.run(settings, console)
        prog.update(task, advance=1)
        if report:
            prog.update(task, description=stages[2])
            path = _write_report(settings, db, markets["checkpoints"])
            prog.update(task, advance=1)
    console.print(
        Rule(f"done in {time.perf_counter() - started:.1f} s — data under {settings.data_dir}")
    )
    if path is not None:
        console.print(f"report: {path}", soft_wrap=True)
    else:
        console.print(
            "[dim]pictures of this run: `edgefinder demo --report` writes an HTML report[/dim]"
        )
    return path
