"""Rich tables of the win-probability model's evaluation and of the action values."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.table import Table

from edgefinder.esports.winprob.metrics import METRICS, ForecastMetrics

METRIC_LABEL = {
    "log_loss": "log loss (lower better)",
    "brier": "Brier (lower better)",
    "auc": "AUC (higher better)",
    "ece": "calibration error (ECE)",
}


def _f(v: Any, fmt: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(float(v), fmt)


def _with_ci(m: Any, fmt: str = ".4f") -> str:
    return f"{_f(m.estimate, fmt)} [{_f(m.ci_low, fmt)}, {_f(m.ci_high, fmt)}]"


def metrics_table(
    game: str, version: str | None, model: ForecastMetrics, baseline: ForecastMetrics
) -> Table:
    """Held-out metrics of the model beside the baseline's, each with its match-bootstrap CI."""
    t = Table(
        title=f"Round win probability, {game}"
        + (f" (model {version})" if version else "")
        + f": held-out {model.n_matches} matches, {model.n:,} states; "
        f"{model.level:.0%} CIs from {model.n_boot} match resamples",
        title_justify="left",
        caption="baseline: logistic regression on the equipment and alive differences",
        caption_justify="left",
    )
    t.add_column("metric", no_wrap=True)
    t.add_column("model [CI]", overflow="fold")
    t.add_column("baseline [CI]", overflow="fold")
    for m in METRICS:
        t.add_row(METRIC_LABEL[m], _with_ci(getattr(model, m)), _with_ci(getattr(baseline, m)))
    return t


def values_table(values: pd.DataFrame, strata: str = "all") -> Table:
    """Action values per intent (``strata='all'``), or every stratum (``'every'``)."""
    rows = values if strata == "every" else values[values["stratum"] == "all"]
    t = Table(
        title="Win probability added per action (probability points over the horizon, "
        "against the same state without it; 95% CI clustered by match)",
        title_justify="left",
    )
    for c, kw in (
        ("intent", {"no_wrap": True}),
        ("stratum", {"no_wrap": True}),
        ("value [95% CI]", {"overflow": "fold"}),
        ("q", {}),
        ("n", {"justify": "right"}),
        ("matches", {"justify": "right"}),
    ):
        t.add_column(c, **kw)
    for r in rows.to_dict(orient="records"):
        q = r["q_value"]
        t.add_row(
            str(r["intent"]),
            str(r["stratum"]),
            f"{_f(r['estimate'], '+.3f')} [{_f(r['ci_low'], '+.3f')}, {_f(r['ci_high'], '+.3f')}]",
            "—" if q is None or not math.isfinite(q) else (f"{q:.1e}" if q < 1e-3 else f"{q:.3f}"),
            f"{int(r['n']):,}",
            f"{int(r['n_matches']):,}",
        )
    return t


def verdict_table(verdicts: pd.DataFrame) -> Table:
    """One row per intent: the verdict from both designs and each design's estimate.

    What failed is prose, printed under the table by :func:`failed_checks` (a prose cell would wrap
    inside a narrow terminal's table).
    """
    t = Table(
        title="Verdict per intent: an edge needs the exposure-aware round-level effect and the "
        "action value (both on the signals before the round's first kill) to agree in sign and "
        "both hold after FDR",
        title_justify="left",
    )
    for c, kw in (
        ("intent", {"no_wrap": True}),
        ("verdict", {"overflow": "fold"}),
        ("round-level [CI]", {"overflow": "fold"}),
        ("opening action value [CI]", {"overflow": "fold"}),
    ):
        t.add_column(c, **kw)
    for r in verdicts.to_dict(orient="records"):
        t.add_row(
            str(r["intent"]),
            str(r["verdict"]),
            f"{_f(r['round_level_estimate'], '+.3f')} [{_f(r['round_level_ci_low'], '+.3f')}, "
            f"{_f(r['round_level_ci_high'], '+.3f')}]",
            f"{_f(r['action_value'], '+.3f')} [{_f(r['action_value_ci_low'], '+.3f')}, "
            f"{_f(r['action_value_ci_high'], '+.3f')}]",
        )
    return t


def failed_checks(verdicts: pd.DataFrame) -> list[str]:
    """``intent: what failed`` for every intent that is not an edge, in the table's order."""
    return [
        f"{r['intent']}: {r['failed']}" for r in verdicts.to_dict(orient="records") if r["failed"]
    ]
