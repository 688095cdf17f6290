"""One verdict per intent from the two designs: the round-level effect and the action value.

An intent is called an **edge** only when

1. it is not an outcome mechanism (:mod:`edgefinder.esports.mechanisms`),
2. its exposure-aware round-level effect (``opening_within``, :mod:`edgefinder.esports.exposure`)
   holds after the run's Benjamini-Hochberg correction (q < alpha),
3. its action value (win probability added per action, one row per intent with ``estimate``,
   ``ci_low``, ``ci_high``, ``q_value``, ``n``) holds after its own FDR correction (q < alpha);
   the job hands in the opening-phase values (actions before the round's first kill, the signals
   check 2 counts: :mod:`edgefinder.esports.design`), and
4. the two agree in sign.

Without action values (``action_values=None``) check 3 and 4 cannot run: an intent that passes 1
and 2 is reported as ``edge (round-level only)`` with "action value: not computed", never as a full
``edge``. Each row shows both designs' estimates, the per-round count design (``aipw_within``, its
refutation verdict and E-value) for comparison, and which check failed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from edgefinder.esports.contract import details_of
from edgefinder.esports.events import INTENTS
from edgefinder.esports.mechanisms import intent_of
from edgefinder.esports.resultrows import OPENING_METHOD, WITHIN_METHOD

ACTION_VALUE_COLUMNS: tuple[str, ...] = ("intent", "estimate", "ci_low", "ci_high", "q_value", "n")
EDGE = "edge"
ROUND_LEVEL_ONLY = "edge (round-level only)"
NO_EDGE = "no edge"
MECHANISM = "outcome mechanism"
NOT_ESTIMABLE = "not estimable"
VERDICT_COLUMNS: tuple[str, ...] = (
    "intent",
    "verdict",
    "edge",
    "failed",
    "round_level_estimate",
    "round_level_ci_low",
    "round_level_ci_high",
    "round_level_q",
    "action_value",
    "action_value_ci_low",
    "action_value_ci_high",
    "action_value_q",
    "action_value_n",
    "per_round_count_estimate",
    "per_round_count_verdict",
    "e_value",
)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _sign(v: float | None) -> int:
    return 0 if v is None or v == 0 else (1 if v > 0 else -1)


def combine_verdicts(
    effects: pd.DataFrame, action_values: pd.DataFrame | None, *, alpha: float = 0.05
) -> pd.DataFrame:
    """One row per intent (columns :data:`VERDICT_COLUMNS`) from a run's result rows and action values.

    ``effects``: result rows of a run (``feature``, ``outcome``, ``method``, ``effect``, ``ci_low``,
    ``ci_high``, ``q_value``, ``details``, ``outcome_mechanism``), as :func:`~edgefinder.esports.jobs.compute_results`
    returns them or ``correlation_results`` stores them; only ``round_win`` rows are read.
    ``action_values``: columns :data:`ACTION_VALUE_COLUMNS` (probability points, BH q over the
    intents), or None when not computed. Pure: reads its inputs, returns a new frame.
    """
    if action_values is not None:
        missing = [c for c in ACTION_VALUE_COLUMNS if c not in action_values.columns]
        if missing:
            raise ValueError(f"action_values lacks column(s): {', '.join(missing)}")
        av = {str(r["intent"]): r for r in action_values.to_dict(orient="records")}
    rows = []
    eff = effects.loc[effects["outcome"] == "round_win"] if len(effects) else effects
    by_method = {
        m: {intent_of(str(f)): r for f, r in zip(g["feature"], g.to_dict(orient="records"))}
        for m, g in eff.groupby("method")
    }
    opening = by_method.get(OPENING_METHOD, {})
    counts = by_method.get(WITHIN_METHOD, {})
    for intent in INTENTS:
        o = opening.get(intent)
        c = counts.get(intent)
        if o is None and c is None:
            continue
        details = details_of((o or {}).get("details"))
        c_details = details_of((c or {}).get("details"))
        est, q = _num((o or {}).get("effect")), _num((o or {}).get("q_value"))
        row: dict[str, Any] = {
            "intent": intent,
            "round_level_estimate": est,
            "round_level_ci_low": _num((o or {}).get("ci_low")),
            "round_level_ci_high": _num((o or {}).get("ci_high")),
            "round_level_q": q,
            "action_value": None,
            "action_value_ci_low": None,
            "action_value_ci_high": None,
            "action_value_q": None,
            "action_value_n": None,
            "per_round_count_estimate": _num((c or {}).get("effect")),
            "per_round_count_verdict": (c or {}).get("verdict"),
            "e_value": _num(c_details.e_value),
        }
        mechanism = any(bool(r.get("outcome_mechanism")) for r in (o, c) if r is not None)
        a = av.get(intent) if action_values is not None else None
        if a is not None:
            row.update(
                action_value=_num(a["estimate"]),
                action_value_ci_low=_num(a["ci_low"]),
                action_value_ci_high=_num(a["ci_high"]),
                action_value_q=_num(a["q_value"]),
                action_value_n=int(a["n"]) if _num(a["n"]) is not None else None,
            )
        failed: list[str] = []
        if mechanism:
            why = details.outcome_mechanism or c_details.outcome_mechanism
            verdict, failed = MECHANISM, [f"outcome mechanism: {why}"]
        elif o is None or est is None:
            reason = details.reason or "no exposure-aware round-level estimate in this run"
            verdict, failed = NOT_ESTIMABLE, [f"round-level effect: {reason}"]
        else:
            if q is None or q >= alpha:
                failed.append(
                    f"round-level effect not significant after FDR (q = {q:.3g})"
                    if q is not None
                    else "round-level effect has no q-value"
                )
            if action_values is None:
                failed.append("action value: not computed")
            elif a is None:
                failed.append("action value: none for this intent")
            else:
                aq = row["action_value_q"]
                if aq is None or aq >= alpha:
                    failed.append(
                        f"action value not significant after FDR (q = {aq:.3g})"
                        if aq is not None
                        else "action value has no q-value"
                    )
                if _sign(row["action_value"]) != _sign(est):
                    failed.append("the round-level effect and the action value disagree in sign")
            round_ok = q is not None and q < alpha
            if not failed:
                verdict = EDGE
            elif round_ok and failed == ["action value: not computed"]:
                verdict = ROUND_LEVEL_ONLY
            else:
                verdict = NO_EDGE
        row["verdict"] = verdict
        row["edge"] = verdict == EDGE
        row["failed"] = "; ".join(failed) if failed else None
        rows.append(row)
    return pd.DataFrame.from_records(rows, columns=list(VERDICT_COLUMNS))


def called(verdicts: pd.DataFrame) -> set[str]:
    """Intents the verdict calls an edge, in full or on the round level only (no action values)."""
    return set(verdicts.loc[verdicts["verdict"].isin((EDGE, ROUND_LEVEL_ONLY)), "intent"])
