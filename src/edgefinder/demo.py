"""``edgefinder demo``: every pipeline on generated data, embedded default, one short summary."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from edgefinder.settings import Settings


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
    console.print(Rule("Esports macro-strategy analytics"))
    db = esports_demo.run(settings, console)
    console.print(Rule("Futures research pipeline"))
    markets = markets_demo.run(settings, console)
    path = None
    if report:
        from edgefinder.report import build_report, write_report
        from edgefinder.store.engine import make_engine

        url = f"sqlite:///{db.as_posix()}"
        engine = make_engine(url)
        try:
            built = build_report(
                engine, url, markets["checkpoints"], stale_after_s=settings.results_stale_after_s
            )
        finally:
            engine.dispose()
        path = write_report(built, Path(settings.data_dir) / "demo" / "report.html")
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
