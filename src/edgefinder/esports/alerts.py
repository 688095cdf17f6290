"""Alerts on surprising patterns: what changed between a run and the previous one.

A run is compared with the **previous succeeded run on the same outcome set** (the set of
``outcome`` values among its ``correlation_results``; a run with other outcomes tests other
questions). Results are matched by ``(feature, outcome, method)``; only pairs present in both runs
are compared (a test that is new in this run has nothing to be surprising against). Each pair gives
at most one alert, the first kind that applies:

1. ``sign_flip``: significant in both runs, estimates of opposite sign;
2. ``newly_significant``: significant now, not before;
3. ``significance_lost``: significant before, not now (including a test that could not run now);
4. ``outside_previous_ci``: significant in either run, and the new estimate lies outside the
   previous run's confidence interval.

"Significant" is the stored ``significant`` flag (BH q < alpha of that run); the estimate is the
``effect`` column in the unit of its method (see :mod:`edgefinder.esports.jobs`). The comparison
reads only the generic columns (feature, outcome, method, effect, ci_low, ci_high, p_value,
q_value, significant), so new methods or result fields need no change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, desc, insert, select

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.esports.queries import succeeded_runs
from edgefinder.jsonsafe import jsonable
from edgefinder.store.engine import as_utc
from edgefinder.store.tables import alerts, analysis_runs, correlation_results

__all__ = [
    "ALERT_KINDS",
    "alert_payload",
    "compare_results",
    "compute_alerts",
    "kinds_count",
    "previous_run",
]

ALERT_KINDS: tuple[str, ...] = (
    "sign_flip",
    "newly_significant",
    "significance_lost",
    "outside_previous_ci",
)
KEY = ["feature", "outcome", "method"]
FIGURES = ["effect", "ci_low", "ci_high", "p_value", "q_value", "significant"]

_DESCRIBE = {
    "sign_flip": "significant effect flipped sign",
    "newly_significant": "newly significant",
    "significance_lost": "no longer significant",
    "outside_previous_ci": "estimate outside the previous run's 95% CI",
}


def _num(v: Any) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.3g}"


def _message(r: Any) -> str:
    def fig(side: str) -> str:
        est, lo, hi, q = (
            getattr(r, f"{k}_{side}") for k in ("effect", "ci_low", "ci_high", "q_value")
        )
        return f"{_num(est)} [{_num(lo)}, {_num(hi)}] q={'n/a' if q is None or not np.isfinite(q) else f'{q:.2g}'}"

    return f"{r.feature} → {r.outcome} ({r.method}): {_DESCRIBE[r.kind]}: {fig('before')} → {fig('after')}"


def compare_results(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The alerts between two runs' result rows (pure function; see the module docstring for the rules).

    Both frames need the columns ``feature, outcome, method, effect, ci_low, ci_high, p_value,
    q_value, significant``. Returns one row per alert: the key, ``kind``, ``message`` and every
    figure suffixed ``_before`` / ``_after``, ordered by kind then key.
    """
    cols = [*KEY, *FIGURES]
    b = before.loc[:, cols].drop_duplicates(KEY, keep="last")
    a = after.loc[:, cols].drop_duplicates(KEY, keep="last")
    m = b.merge(a, on=KEY, suffixes=("_before", "_after"), how="inner")
    if m.empty:
        return m.assign(kind=pd.Series(dtype=object), message=pd.Series(dtype=object))
    for side in ("before", "after"):
        for k in ("effect", "ci_low", "ci_high", "p_value", "q_value"):
            m[f"{k}_{side}"] = pd.to_numeric(m[f"{k}_{side}"], errors="coerce").astype(float)
        m[f"significant_{side}"] = m[f"significant_{side}"].fillna(False).astype(bool)
    sig_b, sig_a = m["significant_before"].to_numpy(), m["significant_after"].to_numpy()
    est_b, est_a = m["effect_before"].to_numpy(), m["effect_after"].to_numpy()
    lo, hi = m["ci_low_before"].to_numpy(), m["ci_high_before"].to_numpy()
    with np.errstate(invalid="ignore"):
        flip = sig_b & sig_a & (np.sign(est_b) * np.sign(est_a) < 0)
        known = np.isfinite(est_a) & np.isfinite(lo) & np.isfinite(hi)
        outside = (sig_b | sig_a) & known & ((est_a < lo) | (est_a > hi))
    kind = np.select(
        [flip, sig_a & ~sig_b, sig_b & ~sig_a, outside],
        list(ALERT_KINDS),
        default="",
    )
    out = m.assign(kind=kind).loc[kind != ""].copy()
    out["kind"] = pd.Categorical(out["kind"], categories=list(ALERT_KINDS), ordered=True)
    out = out.sort_values(["kind", *KEY]).reset_index(drop=True)
    out["kind"] = out["kind"].astype(str)
    out["message"] = [_message(r) for r in out.itertuples(index=False)]
    return out


def _outcome_set(conn: Connection, run_id: str) -> frozenset[str]:
    c = correlation_results.c
    return frozenset(conn.execute(select(c.outcome).where(c.run_id == run_id).distinct()).scalars())


def previous_run(conn: Connection, run_id: str, *, lookback: int = 50) -> str | None:
    """The latest succeeded run started before ``run_id`` whose results cover the same outcomes."""
    r = analysis_runs.c
    this = conn.execute(select(r.started_at).where(r.run_id == run_id)).first()
    if this is None:
        return None
    want = _outcome_set(conn, run_id)
    if not want:
        return None
    candidates = conn.execute(
        succeeded_runs()
        .with_only_columns(r.run_id)
        .where(
            r.run_id != run_id,
            r.started_at <= this.started_at,
            r.n_tests > 0,
        )
        .order_by(desc(r.started_at))
        .limit(lookback)
    ).scalars()
    for cand in candidates:
        if _outcome_set(conn, cand) == want:
            return str(cand)
    return None


def _results(conn: Connection, run_id: str) -> pd.DataFrame:
    c = correlation_results.c
    rows = conn.execute(select(*[c[k] for k in (*KEY, *FIGURES)]).where(c.run_id == run_id)).all()
    # rows as tuples, which pandas makes of them anyway (the stubs take no Sequence rows)
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=[*KEY, *FIGURES])


def compute_alerts(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """Compare ``run_id`` with its previous run, store the alerts and return them as stored (with ids)."""
    with engine.connect() as conn:
        prev = previous_run(conn, run_id)
        if prev is None:
            return []
        found = compare_results(_results(conn, prev), _results(conn, run_id))
    if found.empty:
        return []
    records = []
    for r in found.to_dict(orient="records"):
        rec: dict[str, Any] = {
            "run_id": run_id,
            "previous_run_id": prev,
            "kind": r["kind"],
            "message": r["message"],
        }
        rec.update({k: r[k] for k in KEY})
        for side in ("before", "after"):
            rec[f"{side}_estimate"] = jsonable(r[f"effect_{side}"])
            for k in ("ci_low", "ci_high", "q_value", "significant"):
                rec[f"{side}_{k}"] = jsonable(r[f"{k}_{side}"])
        rec["details"] = jsonable(
            {
                "p_value_before": jsonable(r["p_value_before"]),
                "p_value_after": jsonable(r["p_value_after"]),
                "purpose": PURPOSE,
                "disclaimer": DISCLAIMER,
            }
        )
        records.append(rec)
    with engine.begin() as tx:
        tx.execute(insert(alerts), records)
        stored = tx.execute(
            select(alerts).where(alerts.c.run_id == run_id).order_by(alerts.c.id)
        ).all()
    return [dict(row._mapping) for row in stored]


def alert_payload(row: dict[str, Any] | Any) -> dict[str, Any]:
    """The JSON contract of one alert (webhook body, insights entry, API row), from a stored row."""
    m = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)

    def side(name: str) -> dict[str, Any]:
        return {
            k: m.get(f"{name}_{k}")
            for k in ("estimate", "ci_low", "ci_high", "q_value", "significant")
        }

    created, acked = m.get("created_at"), m.get("acknowledged_at")
    return {
        "type": "alert",
        "id": m["id"],
        "run_id": m["run_id"],
        "previous_run_id": m["previous_run_id"],
        "kind": m["kind"],
        "feature": m["feature"],
        "outcome": m["outcome"],
        "method": m["method"],
        "before": side("before"),
        "after": side("after"),
        "message": m["message"],
        "created_at": _iso(created),
        "acknowledged_at": _iso(acked),
        "purpose": PURPOSE,
        "disclaimer": DISCLAIMER,
    }


def _iso(dt: Any) -> str | None:
    aware = as_utc(dt)
    return None if aware is None else aware.isoformat()


def kinds_count(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Alerts per kind (every kind present, zero when absent)."""
    counts = dict.fromkeys(ALERT_KINDS, 0)
    for r in rows:
        counts[r["kind"]] += 1
    return counts
