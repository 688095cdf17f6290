"""One typed result row: the table, the job's rows, the API's model and the details readers agree."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgefinder.esports.api import CausalEffectOut, CorrelationOut
from edgefinder.esports.contract import RESULT_COLUMNS, ResultDetails, ResultRow, details_of
from edgefinder.esports.jobs import RESULT_COLUMNS as JOB_COLUMNS
from edgefinder.store.tables import correlation_results

ROW = {
    "feature": "peek_count",
    "outcome": "round_win",
    "method": "aipw_within",
    "n": 400,
    "statistic": 2.5,
    "effect": 0.05,
    "ci_low": 0.01,
    "ci_high": 0.09,
    "p_value": 0.01,
    "q_value": 0.03,
    "significant": True,
    "verdict": "robust",
    "exploratory": False,
    "direction": "positive",
    "details": {"e_value": 1.4, "naive_ci": [0.0, 0.1], "bh_family_size": 12},
    "outcome_mechanism": False,
}


def test_the_row_shape_is_written_once() -> None:
    assert JOB_COLUMNS == RESULT_COLUMNS == tuple(ROW)
    stored = [c.name for c in correlation_results.columns]
    assert [c for c in stored if c not in ("id", "run_id", "purpose", "created_at")] == list(
        RESULT_COLUMNS
    )
    # the API answers the same row; the stored `effect` is called `estimate` in every answer
    api = set(CorrelationOut.model_fields) - {"id", "run_id", "purpose", "disclaimer"}
    assert api == (set(RESULT_COLUMNS) - {"effect"}) | {"estimate"}
    for name in ("between_team", "e_value", "e_value_ci", "refutations", "balance"):
        assert name in CausalEffectOut.model_fields and name in ResultDetails.model_fields


def test_details_are_read_by_name_and_keep_every_key() -> None:
    row = ResultRow.model_validate(ROW)
    assert row.details.e_value == 1.4 and row.details.naive_ci == [0.0, 0.1]
    assert row.details.reason is None  # a key the row does not carry reads as None
    # keys no reader names pass through: the stored JSON is unchanged
    assert row.details.model_dump(exclude_unset=True) == ROW["details"]
    assert details_of(None) == ResultDetails()


def test_a_row_of_the_wrong_shape_fails() -> None:
    with pytest.raises(ValidationError):
        ResultRow.model_validate({k: v for k, v in ROW.items() if k != "q_value"})
    with pytest.raises(ValidationError):
        details_of({"e_value": "large"})
    with pytest.raises(ValidationError):
        details_of({"refutations": ["placebo"]})
