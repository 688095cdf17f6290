"""`edgefinder esports …` commands: simulate, publish, ingest, analyze."""

from __future__ import annotations

import typer

esports_app = typer.Typer(
    help="Esports analytics: simulate matches, publish/ingest events, run the correlation job.",
    no_args_is_help=True,
)
