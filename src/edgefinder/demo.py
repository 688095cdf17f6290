"""``edgefinder demo``: every pipeline on generated data, embedded default, one short summary."""

from __future__ import annotations

import time

from rich.console import Console
from rich.rule import Rule

from edgefinder.settings import Settings


def run_demo(settings: Settings, console: Console) -> None:
    """Run the esports and futures demos in turn (each writes under ``data_dir/demo``)."""
    from edgefinder.esports import demo as esports_demo
    from edgefinder.markets import demo as markets_demo

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    console.print(Rule("[bold]edgefinder demo[/bold] — embedded default (SQLite + files, no servers)"))
    console.print(Rule("Esports macro-strategy analytics"))
    esports_demo.run(settings, console)
    console.print(Rule("Futures research pipeline"))
    markets_demo.run(settings, console)
    console.print(Rule(f"done in {time.perf_counter() - started:.1f} s — data under {settings.data_dir}"))
