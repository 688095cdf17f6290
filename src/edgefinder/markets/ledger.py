"""The trial ledger: every configuration a walk-forward study evaluated, one row each.

A selected strategy's Sharpe is the best of everything tried, so its deflation needs the count and
the spread of *all* those trials, not only of the families Phase 5 tested in one run. Rows:

* ``stage="playbook"``: one per Phase 3 parameter set scored for a template (``key`` the template
  id, ``params`` the exit parameters as JSON, ``n`` the template's training trades, ``sharpe`` the
  search's score: per-trade Sharpe of those trades net of costs);
* ``stage="selection"``: one per family Phase 5 tested (``key`` the family, ``n`` its
  out-of-sample trades, ``sharpe`` their per-trade Sharpe).

Each row carries its ``instrument`` and ``fold``. The ledger is stored with the study as
``trial_ledger.parquet``; ``n_trials`` in ``study.json`` is its row count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["LEDGER_COLUMNS", "LEDGER_FILE", "ledger_frame", "playbook_rows", "selection_rows"]

LEDGER_FILE = "trial_ledger.parquet"
LEDGER_COLUMNS = ("instrument", "fold", "stage", "key", "params", "n", "sharpe")


def playbook_rows(instrument: str, fold: int, event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Ledger rows of one Phase 3 ``"trials"`` event (a template's scored parameter sets)."""
    return [
        {
            "instrument": instrument,
            "fold": int(fold),
            "stage": "playbook",
            "key": str(event["template_id"]),
            "params": json.dumps(params, sort_keys=True),
            "n": int(event["n"]),
            "sharpe": float(score),
        }
        for params, score in event["trials"]
    ]


def selection_rows(instrument: str, fold: int, families: pd.DataFrame) -> list[dict[str, Any]]:
    """Ledger rows of the families Phase 5 tested (``family_evidence``'s ``tested`` rows); the
    Sharpe is mean / population sd of the family's trades (the ledger's one convention)."""
    rows = []
    r: Any
    for r in families[families["tested"].astype(bool)].itertuples(index=False):
        sd = float(r.sd_pnl) * np.sqrt((r.trades - 1) / r.trades) if r.trades > 1 else 0.0
        rows.append(
            {
                "instrument": instrument,
                "fold": int(fold),
                "stage": "selection",
                "key": str(r.family),
                "params": "",
                "n": int(r.trades),
                "sharpe": float(r.mean_pnl) / sd if sd > 0 else 0.0,
            }
        )
    return rows


def ledger_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The ledger as a frame in a fixed order (instrument, fold, stage, key, params)."""
    df = pd.DataFrame(list(rows), columns=list(LEDGER_COLUMNS))
    return df.sort_values(list(LEDGER_COLUMNS[:5]), kind="stable").reset_index(drop=True)


def write_ledger(df: pd.DataFrame, study_dir: str | Path) -> Path:
    """Write ``trial_ledger.parquet`` into the study directory."""
    path = Path(study_dir) / LEDGER_FILE
    df.to_parquet(path, index=False)
    return path
