"""The esports section's data: one succeeded correlation run and the data behind it, from the database.

:func:`esports_data` returns a JSON-ready dict (served as-is by ``GET /api/v1/report/esports`` and
drawn by :mod:`edgefinder.report.figures`):

* ``run`` — the run (id, finish time, duration, team-rounds, tests, significant, parameters);
* ``data`` — what is in the database now: matches, finished rounds, team-rounds, signals, raw
  events, dead letters (by source), when the last event and signal were ingested, the run's age
  and whether it is stale;
* ``effects`` — per intent count and outcome the estimate the run makes on that outcome, with
  its 95 % CI: on an outcome with a causal step the adjusted (AIPW) effect in probability points,
  beside the naive difference in means and, where stored, the between-team AIPW; otherwise the
  logistic log odds ratio per SD adjusted for the pre-round covariates; on ``econ_delta`` the
  Spearman rho. Each carries q, significance and, where the analysis gives one, its verdict;
* ``causal`` — the causal rows with their verdicts, refutation checks and E-values;
* ``balance`` — standardized mean differences of each covariate before and after weighting;
* ``alerts`` — the alerts the run raised against its previous run.

Only aggregates are read: no player identifier (nor team name) leaves the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from edgefinder.errors import EdgefinderError
from edgefinder.esports.aggregate import COUNT_FEATURES, COVARIATES
from edgefinder.esports.alerts import alert_payload
from edgefinder.esports.contract import details_of
from edgefinder.esports.queries import latest_succeeded_run, run_action_values
from edgefinder.esports.winprob.store import latest_models
from edgefinder.jsonsafe import jsonable
from edgefinder.store.engine import as_utc
from edgefinder.store.tables import (
    alerts,
    analysis_runs,
    correlation_results,
    dead_letters,
    macro_outcomes,
    matches,
    micro_actions,
    raw_events,
    rounds,
)

__all__ = ["CAUSAL_METHODS", "RunNotFound", "esports_data"]

#: Methods of the causal step, preferred first: the within-match AIPW (when the analysis has it), else
#: the AIPW on pre-round covariates.
CAUSAL_METHODS: tuple[str, ...] = ("aipw_within", "aipw")
#: The between-team AIPW kept beside the within-match one for comparison (not an edge).
BETWEEN_METHOD = "aipw_naive"

_SCALES = {
    "causal": "ATE, probability points",
    "logistic": "log odds ratio per SD, adjusted for pre-round covariates",
    "spearman": "Spearman ρ (unadjusted)",
}


class RunNotFound(EdgefinderError):
    """The requested analysis run does not exist or did not succeed."""


def _pair(v: Any) -> tuple[Any, Any]:
    """A stored ``[low, high]`` interval (None, None when absent)."""
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return v[0], v[1]
    return None, None


def _iso(dt: Any) -> str | None:
    aware = as_utc(dt)
    return None if aware is None else aware.isoformat(timespec="seconds")


def _pick_run(conn: Any, run_id: str | None) -> Any:
    row = latest_succeeded_run(conn, run_id)
    if row is None and run_id is not None:
        raise RunNotFound(f"no succeeded analysis run {run_id!r}")
    return row


def _data_counts(conn: Any, run: Any, stale_after_s: float) -> dict[str, Any]:
    def count(table: Any, *where: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    by_source = {
        str(s): int(n)
        for s, n in conn.execute(
            select(dead_letters.c.source, func.count())
            .group_by(dead_letters.c.source)
            .order_by(dead_letters.c.source)
        )
    }
    last_event = conn.execute(select(func.max(raw_events.c.created_at))).scalar_one()
    last_signal = conn.execute(select(func.max(micro_actions.c.created_at))).scalar_one()
    finished = as_utc(run.finished_at) if run is not None else None
    age = (datetime.now(UTC) - finished).total_seconds() if finished is not None else None
    newest = max(
        (t for t in (as_utc(last_event), as_utc(last_signal)) if t is not None), default=None
    )
    started = as_utc(run.started_at) if run is not None else None
    return {
        "matches": count(matches),
        "finished_rounds": count(rounds, rounds.c.end_ts.is_not(None)),
        "team_rounds": count(macro_outcomes),
        "signals": count(micro_actions),
        "signals_resolved": count(
            micro_actions, micro_actions.c.round_no.is_not(None), micro_actions.c.team.is_not(None)
        ),
        "raw_events": count(raw_events),
        "dead_letters": sum(by_source.values()),
        "dead_letters_by_source": by_source,
        "last_event_ingested_at": _iso(last_event),
        "last_signal_ingested_at": _iso(last_signal),
        "run_age_s": age,
        "stale_after_s": stale_after_s,
        "stale": None if age is None else age > stale_after_s,
        # data that arrived after the run started is not in its results
        "data_newer_than_run": None if newest is None or started is None else newest > started,
    }


def _effect_record(r: dict[str, Any], kind: str) -> dict[str, Any]:
    d = details_of(r.get("details"))
    naive_lo, naive_hi = _pair(d.naive_ci)
    return {
        "feature": r["feature"],
        "intent": r["feature"].removesuffix("_count"),
        "outcome": r["outcome"],
        "method": r["method"],
        "kind": kind,
        "scale": _SCALES[kind],
        "n": int(r["n"]),
        "estimate": r["effect"],
        "ci_low": r["ci_low"],
        "ci_high": r["ci_high"],
        "p_value": r["p_value"],
        "q_value": r["q_value"],
        "significant": bool(r["significant"]),
        "exploratory": bool(r["exploratory"]),
        "verdict": r.get("verdict"),
        "naive": d.naive if kind == "causal" else None,
        "naive_ci_low": naive_lo if kind == "causal" else None,
        "naive_ci_high": naive_hi if kind == "causal" else None,
        "between": None,
        "between_ci_low": None,
        "between_ci_high": None,
        "population": d.population,
        "reason": d.reason,
    }


def _effects(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (intent, outcome): see the module doc for which estimate each outcome gets."""
    by_key = {(r["feature"], r["outcome"], r["method"]): r for r in rows}
    outcomes = list(dict.fromkeys(r["outcome"] for r in rows))
    out = []
    for outcome in outcomes:
        present = {m for (_, o, m) in by_key if o == outcome}
        causal = next((m for m in CAUSAL_METHODS if m in present), None)
        method, kind = (
            (causal, "causal")
            if causal
            else ("logistic", "logistic")
            if "logistic" in present
            else ("spearman", "spearman")
            if "spearman" in present
            else (None, "")
        )
        if method is None:
            continue
        for feat in COUNT_FEATURES:
            r = by_key.get((feat, outcome, method))
            if r is None:
                continue
            rec = _effect_record(r, kind)
            between = by_key.get((feat, outcome, BETWEEN_METHOD)) if kind == "causal" else None
            if between is not None:
                rec.update(
                    between=between["effect"],
                    between_ci_low=between["ci_low"],
                    between_ci_high=between["ci_high"],
                )
            out.append(rec)
    return out


def _balance_rows(feature: str, balance: Any) -> list[dict[str, Any]]:
    """SMD records of one causal row; the stored layout is a list of records or ``{covariate: {...}}``."""
    if isinstance(balance, dict):
        items = [{"covariate": k, **(v or {})} for k, v in balance.items()]
    elif isinstance(balance, list):
        items = [b for b in balance if isinstance(b, dict)]
    else:
        return []
    order = {c: i for i, c in enumerate(COVARIATES)}
    items.sort(
        key=lambda b: (order.get(str(b.get("covariate")), len(order)), str(b.get("covariate")))
    )
    return [
        {
            "feature": feature,
            "covariate": str(b.get("covariate")),
            "smd_before": b.get("smd_before"),
            "smd_after": b.get("smd_after"),
        }
        for b in items
    ]


def _causal(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    methods = {r["method"] for r in rows}
    method = next((m for m in CAUSAL_METHODS if m in methods), None)
    causal, balance = [], []
    for r in rows:
        if r["method"] != method:
            continue
        d = details_of(r.get("details"))
        causal.append(
            {
                "feature": r["feature"],
                "intent": r["feature"].removesuffix("_count"),
                "outcome": r["outcome"],
                "method": r["method"],
                "n": int(r["n"]),
                "estimate": r["effect"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "q_value": r["q_value"],
                "significant": bool(r["significant"]),
                "exploratory": bool(r["exploratory"]),
                "verdict": r.get("verdict"),
                "n_treated": d.n_treated,
                "n_control": d.n_control,
                "threshold": d.threshold,
                "naive": d.naive,
                "e_value": d.e_value,
                "e_value_ci": d.e_value_ci,
                "refutations": jsonable(d.refutations),
                "refutations_skipped": d.refutations_skipped,
                "max_abs_smd_before": d.max_abs_smd_before,
                "max_abs_smd_after": d.max_abs_smd_after,
                "population": d.population,
                "reason": d.reason,
            }
        )
        balance.extend(_balance_rows(r["feature"], d.balance))
    order = {f: i for i, f in enumerate(COUNT_FEATURES)}
    causal.sort(key=lambda c: (c["outcome"], order.get(c["feature"], len(order))))
    return causal, balance


def _run_record(run: Any, n_significant: int) -> dict[str, Any]:
    summary = run.summary or {}
    return {
        "run_id": run.run_id,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_s": run.duration_s,
        "n_rows": run.n_rows,
        "n_tests": run.n_tests,
        "n_significant": n_significant,
        "message": summary.get("message"),
        # outcomes and intents the data cannot provide (no n = 0 rows are stored for them)
        "not_available": summary.get("not_available") or {},
        "trigger": run.trigger,
        "params": jsonable(run.params or {}),
    }


def esports_data(
    engine: Engine, run_id: str | None = None, *, stale_after_s: float = 26 * 3600
) -> dict[str, Any]:
    """The esports section of the report for ``run_id`` (default: the latest succeeded run); see the
    module doc. JSON-ready (NaN and infinities are None). Raises :class:`RunNotFound` for an id that is
    not a succeeded run."""
    if not inspect(engine).has_table(analysis_runs.name):
        return {
            "available": False,
            "run": None,
            "data": {},
            "effects": [],
            "causal": [],
            "balance": [],
            "alerts": [],
            "message": "the database has no edgefinder tables yet: run `edgefinder db upgrade`, ingest events "
            "and `edgefinder esports analyze`",
        }
    with engine.connect() as conn:
        run = _pick_run(conn, run_id)
        data = _data_counts(conn, run, stale_after_s)
        if run is None:
            return {
                "available": False,
                "message": "no succeeded analysis run yet: run `edgefinder esports analyze`",
                "run": None,
                "data": data,
                "effects": [],
                "causal": [],
                "balance": [],
                "alerts": [],
            }
        cols = [c for c in correlation_results.c if c.name not in ("created_at", "purpose")]
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(*cols)
                .where(correlation_results.c.run_id == run.run_id)
                .order_by(correlation_results.c.id)
            )
        ]
        alert_rows = conn.execute(
            select(alerts).where(alerts.c.run_id == run.run_id).order_by(alerts.c.id)
        ).all()
        values = run_action_values(conn, run.run_id)
    causal, balance = _causal(rows)
    models = latest_models(engine)
    return jsonable(
        {
            "available": True,
            "message": None,
            "run": _run_record(run, sum(1 for r in rows if r["significant"])),
            "data": data,
            "effects": _effects(rows),
            "causal": causal,
            "balance": balance,
            "action_values": values[values["stratum"] == "all"].to_dict(orient="records"),
            "winprob": [
                {
                    "game": m.game,
                    "model_version": m.model_version,
                    "ece": m.metrics["ece"]["estimate"],
                    "reliability": (m.details or {}).get("reliability") or [],
                }
                for m in models.values()
            ],
            "alerts": [
                {
                    k: v
                    for k, v in alert_payload(a).items()
                    if k not in ("type", "purpose", "disclaimer")
                }
                for a in alert_rows
            ],
        }
    )
