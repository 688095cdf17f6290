"""The alert rules on hand-made result rows, one case per rule and per precedence; the schedule syntax."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from celery.schedules import crontab

from edgefinder.esports.alerts import ALERT_KINDS, compare_results
from edgefinder.esports.tasks import RUN_TASK, celery_config
from edgefinder.schedule import parse_schedule
from edgefinder.settings import Settings

COLS = [
    "feature",
    "outcome",
    "method",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "significant",
]


def _rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=COLS)


def _kinds(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, str]:
    out = compare_results(before, after)
    return dict(zip(out["feature"], out["kind"], strict=True))


BEFORE = _rows(
    ("flip", "round_win", "logistic", -0.30, -0.40, -0.20, 1e-6, 1e-5, True),
    ("new", "round_win", "logistic", 0.01, -0.05, 0.07, 0.70, 0.80, False),
    ("lost", "round_win", "logistic", 0.20, 0.10, 0.30, 1e-4, 1e-3, True),
    ("moved", "round_win", "logistic", 0.20, 0.15, 0.25, 1e-8, 1e-7, True),
    ("steady", "round_win", "logistic", 0.20, 0.15, 0.25, 1e-8, 1e-7, True),
    ("noise", "round_win", "logistic", 0.01, -0.02, 0.04, 0.50, 0.70, False),
    ("untestable", "round_win", "logistic", 0.25, 0.15, 0.35, 1e-6, 1e-5, True),
    ("gone_from_run", "round_win", "logistic", 0.25, 0.15, 0.35, 1e-6, 1e-5, True),
)
AFTER = _rows(
    ("flip", "round_win", "logistic", 0.25, 0.15, 0.35, 1e-5, 1e-4, True),
    ("new", "round_win", "logistic", 0.30, 0.20, 0.40, 1e-6, 1e-5, True),
    ("lost", "round_win", "logistic", 0.05, -0.05, 0.15, 0.30, 0.40, False),
    ("moved", "round_win", "logistic", 0.40, 0.35, 0.45, 1e-9, 1e-8, True),
    ("steady", "round_win", "logistic", 0.22, 0.18, 0.26, 1e-9, 1e-8, True),
    (
        "noise",
        "round_win",
        "logistic",
        0.08,
        0.03,
        0.13,
        0.03,
        0.20,
        False,
    ),  # outside the CI, never significant
    ("untestable", "round_win", "logistic", None, None, None, None, None, False),
    ("brand_new", "round_win", "logistic", 0.30, 0.20, 0.40, 1e-6, 1e-5, True),
)


def test_each_rule_fires_once_and_only_where_it_applies() -> None:
    kinds = _kinds(BEFORE, AFTER)
    assert (
        kinds
        == {
            "flip": "sign_flip",  # also outside the previous CI: the more specific kind wins
            "new": "newly_significant",
            "lost": "significance_lost",
            "moved": "outside_previous_ci",
            "untestable": "significance_lost",  # a test that could not run any more lost its significance
        }
    )
    out = compare_results(BEFORE, AFTER)
    assert list(out["kind"]) == sorted(out["kind"], key=ALERT_KINDS.index)
    flip = out.loc[out["feature"] == "flip"].iloc[0]
    assert (flip["effect_before"], flip["effect_after"], flip["ci_high_before"]) == (
        -0.30,
        0.25,
        -0.20,
    )
    assert flip["message"].startswith(
        "flip → round_win (logistic): significant effect flipped sign: -0.3 [-0.4, -0.2]"
    )


def test_pairs_match_on_feature_outcome_and_method() -> None:
    other_method = AFTER.assign(method="point_biserial")
    assert compare_results(BEFORE, other_method).empty
    other_outcome = AFTER.assign(outcome="econ_delta")
    assert compare_results(BEFORE, other_outcome).empty
    assert compare_results(BEFORE, BEFORE).empty  # a run never surprises itself


def test_zero_estimates_do_not_count_as_a_flip_and_nan_ci_is_not_outside() -> None:
    before = _rows(
        ("z", "round_win", "aipw", 0.0, -0.1, 0.1, 1e-3, 1e-2, True),
        ("n", "round_win", "aipw", 0.2, np.nan, np.nan, 1e-3, 1e-2, True),
    )
    after = _rows(
        ("z", "round_win", "aipw", -0.05, -0.09, -0.01, 1e-3, 1e-2, True),
        ("n", "round_win", "aipw", 0.9, 0.8, 1.0, 1e-3, 1e-2, True),
    )
    assert compare_results(before, after).empty


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 2 * * *", crontab(minute="0", hour="2")),
        ("*/15 9-17 * * mon-fri", crontab(minute="*/15", hour="9-17", day_of_week="mon-fri")),
        ("@every 5s", timedelta(seconds=5)),
        ("@every 2m", timedelta(minutes=2)),
        ("@every 1h", timedelta(hours=1)),
    ],
)
def test_schedule_syntax(text: str, expected: object) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("bad", ["0 25 * * *", "0 2 * *", "daily", "@every 0s", "61 * * * *"])
def test_bad_schedule_is_a_clear_settings_error(bad: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        Settings(analysis_schedule=bad)


def test_celery_keys_live_under_the_redis_prefix_and_beat_runs_daily_at_two() -> None:
    conf = celery_config(Settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix="team-a:"))
    assert conf["broker_transport_options"] == {"global_keyprefix": "team-a:"}
    assert conf["result_backend_transport_options"] == {"global_keyprefix": "team-a:"}
    entry = conf["beat_schedule"]["run-correlation-analysis"]
    assert entry["task"] == RUN_TASK == "edgefinder.analytics.jobs.run_correlation_job_task"
    assert entry["schedule"] == crontab(hour=2, minute=0)  # the original entry
    assert celery_config(Settings())["broker_transport_options"] == {}
