"""The win-probability model and the action values on the real awpy CS tables (5 maps, 132 rounds).

What the data allow: a model is fit and scored (the game has the 4 matches a split needs), and every
intent the import rules derive gets an action value with a CI. What they do not: a judgement of the
model against the baseline. The latest 2 maps are the held-out set, so each CI rests on 2 clusters,
and 3 training maps cannot pay for a booster's splits; the baseline wins there (measured: log loss
0.554 against 0.412). The test states that instead of asserting a comparison the data cannot carry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgefinder.cli import app
from edgefinder.esports.winprob.run import fit_and_value
from edgefinder.store.engine import make_engine

pytestmark = [pytest.mark.slow]

#: awpy tables carry no rule for peek or rotate (no line of sight, no area-to-area sightings here)
DERIVED_CS = ("advance", "retreat", "hold", "plant", "defuse", "trade", "engage")


def test_awpy_maps_get_a_scored_model_and_action_values(shared_dir: Path, sqlite_url: str) -> None:
    folder = shared_dir / "data" / "esports_real" / "portfolio-eg"
    out = CliRunner().invoke(
        app,
        [
            "--database-url",
            sqlite_url,
            "esports",
            "import",
            "--format",
            "awpy",
            str(folder),
            "--ingest",
        ],
    )
    assert out.exit_code == 0, out.output
    engine = make_engine(sqlite_url)
    try:
        run = fit_and_value(engine)
    finally:
        engine.dispose()
    assert set(run.fits) == {"cs"} and not run.skipped
    version, fit = run.fits["cs"]
    assert version == "cs-1" and fit.n_matches == 5 and fit.n_rounds == 132
    m, b = fit.metrics, fit.baseline_metrics
    assert m.n_matches == 2 and fit.baseline_equipment == "tier_diff"  # buy tiers, no money
    for k in ("log_loss", "brier", "auc", "ece"):
        a, c = getattr(m, k), getattr(b, k)
        assert a.ci_low <= a.estimate <= a.ci_high and c.ci_low <= c.estimate <= c.ci_high
        print(
            f"\ncs {k}: model {a.estimate:.4f} [{a.ci_low:.4f}, {a.ci_high:.4f}] "
            f"baseline {c.estimate:.4f} [{c.ci_low:.4f}, {c.ci_high:.4f}]",
            end="",
        )
    values = run.values[run.values["stratum"] == "all"].set_index("intent")
    for intent in DERIVED_CS:
        r = values.loc[intent]
        if intent == "defuse" and not np.isfinite(r["ci_low"]):
            continue  # a defuse starts at most once a round, often on its last tick: few to value
        assert np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]), (intent, r.to_dict())
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"] and r["n"] > 0

    # the command prints the same evaluation, as a second stored version
    shown = CliRunner().invoke(
        app, ["--database-url", sqlite_url, "esports", "winprob", "fit", "--no-values"]
    )
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "Round win probability, cs (model cs-2)" in text
    assert f"{m.log_loss.estimate:.4f} [{m.log_loss.ci_low:.4f}, {m.log_loss.ci_high:.4f}]" in text
    assert f"{b.brier.estimate:.4f}" in text
