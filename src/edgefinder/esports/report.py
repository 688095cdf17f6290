"""Rich tables of a correlation run's findings (used by ``esports analyze`` and the demo)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from edgefinder import DISCLAIMER, PURPOSE
from edgefinder.esports.contract import details_of
from edgefinder.esports.jobs import NAIVE_METHOD, WITHIN_METHOD, JobResult, top_findings
from edgefinder.esports.winprob.tables import failed_checks, values_table, verdict_table

_METHOD_LABEL = {
    "point_biserial": "point-biserial r",
    "spearman": "Spearman ρ",
    "chi2": "χ² (Cramér's V)",
    "logistic": "logistic log-OR/SD (adj.)",
    WITHIN_METHOD: "AIPW ATE, within match",
    NAIVE_METHOD: "AIPW ATE, between teams (naive)",
    "opening_within": "opening count, within match (per signal)",
}


# On a narrow terminal nothing is cut off: feature names stay whole (truncated, "retreat_…" could
# be retreat_count or retreat_share) and the other columns fold their text onto more lines instead
# of ending in "…" (Rich's default would hide digits of an effect or a q-value).
_NAME_COLUMN: dict[str, dict[str, Any]] = {
    "feature": {"no_wrap": True, "min_width": 16}
}  # action_diversity
_FOLD: dict[str, Any] = {"overflow": "fold"}


def _num(v: Any, fmt: str = "+.3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return format(float(v), fmt)


def _q(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return "<1e-300" if v == 0 else f"{float(v):.1e}" if v < 1e-3 else f"{float(v):.3f}"


def _check(refutations: dict[str, Any] | None, name: str) -> str:
    """One refutation check in a cell: its figure and ✓ / ✗ (— when it did not run)."""
    c = (refutations or {}).get(name)
    if not c:
        return "—"
    mark = {True: "✓", False: "✗"}.get(c.get("passed"), "?")
    if name == "random_common_cause":
        return f"{_num(c.get('shift_in_se'), '+.2f')} SE {mark}"
    return f"{_num(c.get('estimate'))} {mark}"


def causal_table(results: pd.DataFrame) -> Table:
    """One row per intent: the within-match AIPW effect (95% CI clustered by match), its verdict and the
    refutation figures, beside the naive between-team estimate it replaces."""
    t = Table(
        title="Causal effect of each intent on round win, team compared with itself inside a match "
        "(probability points; CI clustered by match)",
        title_justify="left",
    )
    for col, just in (
        ("feature", "left"),
        ("within-match ATE [95% CI]", "right"),
        ("q", "right"),
        ("verdict", "left"),
        ("placebo", "right"),
        ("half", "right"),
        ("random cause", "right"),
        ("E-value (CI)", "right"),
        ("between-team (naive)", "right"),
        ("n", "right"),
    ):
        t.add_column(col, justify=just, **_NAME_COLUMN.get(col, _FOLD))  # type: ignore[arg-type]
    rows = results[results["method"] == WITHIN_METHOD]
    # effects of tests that could not run are None: an object column pandas cannot abs()
    rows = rows.assign(_abs=pd.to_numeric(rows["effect"], errors="coerce").abs()).sort_values(
        ["q_value", "_abs"], ascending=[True, False], na_position="last"
    )
    for r in rows.to_dict(orient="records"):
        d = details_of(r["details"])
        ref = d.refutations
        between = d.between_team or {}
        verdict = r.get("verdict") or "—"
        style = {"robust": "green", "fragile": "yellow"}.get(verdict, "dim")
        label = r["feature"] if r["outcome"] == "round_win" else f"{r['feature']} → {r['outcome']}"
        t.add_row(
            label,
            f"{_num(r['effect'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
            _q(r["q_value"]),
            f"[{style}]{verdict}[/{style}]" + (" (exploratory)" if r["exploratory"] else ""),
            _check(ref, "placebo"),
            _check(ref, "subset"),
            _check(ref, "random_common_cause"),
            f"{_num(d.e_value, '.2f')} ({_num(d.e_value_ci, '.2f')})",
            _num(between.get("estimate")),
            f"{r['n']:,}",
        )
    return t


def findings_table(results: pd.DataFrame, n: int = 15, *, include_in_round: bool = False) -> Table:
    """The ``n`` strongest significant (feature, outcome) pairs: q, then |effect|.

    Each pair appears once, with its strongest test; "naive → within match" shows the pair's causal
    estimate (naive difference in means → within-match AIPW, probability points) where the job made one.
    """
    ranked = top_findings(results, len(results), include_in_round=include_in_round)
    top = ranked.drop_duplicates(subset=["feature", "outcome"], keep="first").head(n)
    within = results[results["method"] == WITHIN_METHOD]
    aipw = {(r["feature"], r["outcome"]): r for r in within.to_dict(orient="records")}
    t = Table(
        title=f"Top {len(top)} significant feature/outcome pairs (BH q < 0.05 over all tests of the run)",
        title_justify="left",
    )
    for col, just in (
        ("feature", "left"),
        ("outcome", "left"),
        ("method", "left"),
        ("effect [95% CI]", "right"),
        ("q", "right"),
        ("naive → within match", "right"),
        ("note", "left"),
    ):
        t.add_column(col, justify=just, **_NAME_COLUMN.get(col, _FOLD))  # type: ignore[arg-type]
    for r in top.to_dict(orient="records"):
        has_ci = _num(r["ci_low"]) != "—"
        ci = f" [{_num(r['ci_low'])}, {_num(r['ci_high'])}]" if has_ci else ""
        c = aipw.get((r["feature"], r["outcome"]))
        naive_adj = "—"
        if c is not None:
            naive_adj = f"{_num((c['details'] or {}).get('naive'))} → {_num(c['effect'])}"
            if not c["significant"]:
                naive_adj += " (n.s.)"
        note = "exploratory" if r["exploratory"] else ""
        t.add_row(
            r["feature"],
            r["outcome"],
            _METHOD_LABEL.get(r["method"], r["method"]),
            f"{_num(r['effect'])}{ci}",
            _q(r["q_value"]),
            naive_adj,
            note,
        )
    return t


def not_available_line(missing: dict[str, str]) -> str:
    """``not available in this data: econ_delta (no end-of-round bank …), peek (…)``."""
    return "not available in this data, not tested: " + ", ".join(
        f"{name} ({why})" for name, why in missing.items()
    )


def print_run(
    result: JobResult, console: Console, n: int = 15, *, include_in_round: bool = False
) -> None:
    """Print the run's message, the causal table, the top findings and the purpose/disclaimer."""
    console.print(
        f"run [bold]{result.run_id}[/bold]: {result.message} in {result.duration_s:.1f} s"
    )
    if result.not_available:
        console.print(not_available_line(result.not_available))
    if result.n_tests == 0:
        console.print(f"[dim]purpose: {PURPOSE} — {DISCLAIMER}[/dim]")
        return
    console.print(causal_table(result.results))
    if result.action_values is not None and len(result.action_values):
        console.print(values_table(result.action_values))
    if result.verdicts is not None and len(result.verdicts):
        console.print(verdict_table(result.verdicts))
        for line in failed_checks(result.verdicts):
            console.print(line, highlight=False)
    console.print(findings_table(result.results, n, include_in_round=include_in_round))
    if not include_in_round:
        hidden = int(
            sum(
                1
                for d, s in zip(
                    result.results["details"], result.results["significant"], strict=True
                )
                if s and details_of(d).kind == "in_round"
            )
        )
        if hidden:
            console.print(
                f"[dim]{hidden} significant in-round associations (kills, deaths, opening kill) not shown: "
                "they are part of how a round is won, not edges.[/dim]"
            )
    for r in result.results.to_dict(orient="records"):
        if details_of(r["details"]).kind == "covariate" and r["method"] == "logistic":
            console.print(
                f"pre-round baseline: {r['feature']} → {r['outcome']}: {_METHOD_LABEL['logistic']} "
                f"{_num(r['effect'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}], q {_q(r['q_value'])}"
                f"{' ✓' if r['significant'] else ''}"
            )
    console.print(f"[dim]purpose: {PURPOSE} — {DISCLAIMER}[/dim]")
