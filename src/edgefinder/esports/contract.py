"""The typed contract of one result row, from the job's battery to the API and the report.

:class:`ResultRow` is one row of ``correlation_results`` without its id and run id (the columns
:data:`RESULT_COLUMNS`, in the table's order); the job validates every row it stores through it,
the API's ``CorrelationOut`` is built from it, and readers of the ``details`` JSON go through
:class:`ResultDetails` (:func:`details_of`) instead of string keys, so a renamed key is a type
error in every reader instead of a silent None. The stored JSON is unchanged: keys the readers do
not name pass through (``extra='allow'``) and a key a row does not carry reads as None.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ResultDetails(BaseModel):
    """The keys of a result row's ``details`` that the API, the report and the verdict read.

    ``kind``: in_round or micro; ``reason``: why the test could not run (None when it ran);
    ``population``: which team-rounds were analysed; ``outcome_mechanism``: why the feature is the
    outcome by the rules (None when it is not). Causal rows: ``threshold`` of the binarized count,
    ``n_treated``/``n_control`` team-rounds, ``naive`` and ``naive_ci`` (probability points),
    ``between_team`` (the naive between-team estimate), ``e_value``/``e_value_ci`` (risk-ratio
    scale), ``refutations`` (check -> figures) or ``refutations_skipped`` (why not run),
    ``balance`` (SMD before/after weighting, records or ``{covariate: {...}}``) and its maxima.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str | None = None
    reason: str | None = None
    population: str | None = None
    outcome_mechanism: str | None = None
    threshold: float | None = None
    n_treated: int | None = None
    n_control: int | None = None
    naive: float | None = None
    naive_ci: list[float | None] | None = None
    between_team: dict[str, Any] | None = None
    e_value: float | None = None
    e_value_ci: float | None = None
    refutations: dict[str, Any] | None = None
    refutations_skipped: str | None = None
    balance: list[dict[str, Any]] | dict[str, Any] | None = None
    max_abs_smd_before: float | None = None
    max_abs_smd_after: float | None = None


def details_of(raw: Any) -> ResultDetails:
    """A stored or computed ``details`` value (a dict, or None for none) as :class:`ResultDetails`."""
    return ResultDetails.model_validate(raw or {})


class ResultRow(BaseModel):
    """One test of a run (see :mod:`edgefinder.esports.jobs` for each method's effect and scale)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    outcome: str
    method: str
    n: int
    statistic: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    q_value: float | None
    significant: bool
    verdict: str | None
    exploratory: bool
    direction: str | None
    details: ResultDetails
    outcome_mechanism: bool


#: The columns of a result row (``correlation_results`` without ``id``, ``run_id``, ``created_at``).
RESULT_COLUMNS: tuple[str, ...] = tuple(ResultRow.model_fields)
