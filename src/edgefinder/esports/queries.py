"""The read queries every consumer of the analysis shares: which run is "the latest", and its rows.

The API, the report and the alerts all ask "the latest succeeded run" (optionally one named run,
or only runs before a given one); the rule lives here once: status ``succeeded``, newest
``finished_at`` first (``started_at`` where the caller compares runs by when they began).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, desc, select

from edgefinder.store.tables import action_values, analysis_runs

SUCCEEDED = "succeeded"


def succeeded_runs():  # type: ignore[no-untyped-def]
    """``SELECT … FROM analysis_runs WHERE status = 'succeeded'`` (add filters and an order)."""
    return select(analysis_runs).where(analysis_runs.c.status == SUCCEEDED)


def latest_succeeded_run(conn: Connection, run_id: str | None = None) -> Any:
    """The newest succeeded run (by ``finished_at``), or the succeeded run ``run_id``; None if none."""
    stmt = succeeded_runs()
    if run_id is not None:
        return conn.execute(stmt.where(analysis_runs.c.run_id == run_id)).first()
    return conn.execute(stmt.order_by(desc(analysis_runs.c.finished_at)).limit(1)).first()


def run_action_values(conn: Connection, run_id: str) -> pd.DataFrame:
    """The action values a run stored (every stratum), ``stratum = 'all'`` first, by intent."""
    a = action_values.c
    res = conn.execute(
        select(
            a.game,
            a.stratum,
            a.intent,
            a.estimate,
            a.ci_low,
            a.ci_high,
            a.p_value,
            a.q_value,
            a.n,
            a.n_matches,
        )
        .where(a.run_id == run_id)
        .order_by((a.stratum != "all"), a.stratum, a.intent)
    )
    return pd.DataFrame([tuple(r) for r in res], columns=list(res.keys()))
