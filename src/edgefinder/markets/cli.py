"""`edgefinder markets …` commands: synth, atlas build, run, approve-playbook."""

from __future__ import annotations

import typer

markets_app = typer.Typer(
    help="Futures research: synthetic markets, ATLAS, discovery → playbook → forward pass → selection.",
    no_args_is_help=True,
)
atlas_app = typer.Typer(help="Build and inspect the multi-timeframe ATLAS store.", no_args_is_help=True)
markets_app.add_typer(atlas_app, name="atlas")
